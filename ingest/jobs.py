"""Ingestion as jobs on procrastinate (PostgreSQL-backed): one job per file.

A job that fails for a passing reason (database, I/O) is retried with exponential backoff; one that
fails for a reason retrying can't fix (corrupt file, unknown type, too large) fails at once with its
reason. Jobs of a document share a lock, so two workers never write the same document. A worker
killed mid-job leaves nothing visible (the document is written in one transaction at the end) and
the job, left in ``doing`` by a worker whose heartbeat stopped, is retried by the next worker to start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued

from ingest import store
from ingest.chunk import Chunker, ChunkSettings
from ingest.detect import Limits
from ingest.embed import SentenceTransformerEmbedder
from ingest.pipeline import IngestDeps, fingerprint, ingest_file
from ingest.types import AccessList, IngestRequest, IngestResult
from retrieval.tokenize import Tokenizer, TokenizerSpec
from sourcebook.db import Database
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.models import resolve_model
from sourcebook.settings import Settings

log = logging.getLogger(__name__)

QUEUE = "ingest"
TASK_NAME = "sourcebook.ingest_file"
# Failures that another attempt can't fix.
PERMANENT = frozenset(
    {
        ErrorCode.INVALID_REQUEST,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.NOT_FOUND,
        ErrorCode.CONFIG_INVALID,
        ErrorCode.MODEL_NOT_FOUND,
    }
)


class TransientIngestError(Exception):
    """A failure worth retrying (database or I/O trouble)."""


class PermanentIngestError(Exception):
    """A failure retrying can't fix; the message says why."""


def chunk_settings(settings: Settings, max_seq_tokens: int) -> ChunkSettings:
    return ChunkSettings(max_seq_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens)


def settings_fingerprint(settings: Settings) -> str:
    """The ingestion fingerprint from settings alone (no model load), as stored on each document."""
    return fingerprint(
        model=settings.embedding_model,
        chunk=chunk_settings(settings, 0),
        pdf_strategy=settings.pdf_strategy,
        keywords=TokenizerSpec.of(settings).key,
    )


@dataclass(slots=True)
class WorkerRuntime:
    """A worker's heavy state, built once on the first job (jobs run in threads): the embedder and the
    chunker around it."""

    settings: Settings
    db: Database
    _deps: IngestDeps | None = None
    _building: threading.Lock = field(default_factory=threading.Lock)

    def deps(self) -> IngestDeps:
        with self._building:
            if self._deps is None:
                self._deps = self._build()
            return self._deps

    def _build(self) -> IngestDeps:
        location = resolve_model(self.settings.embedding_model, offline=self.settings.offline)
        embedder = SentenceTransformerEmbedder(
            location, device=self.settings.embedding_device, batch_size=self.settings.embed_batch_size
        )
        embedder.warm_up()
        if embedder.dim != self.db.space.dim:
            raise SourcebookError(
                ErrorCode.CONFIG_INVALID,
                f"{embedder.model_name} makes {embedder.dim}-d vectors, settings say {self.db.space.dim}",
                hint=f"set SOURCEBOOK_EMBEDDING_DIM={embedder.dim}",
            )
        chunker = Chunker(embedder.count_tokens, chunk_settings(self.settings, embedder.max_seq_length))
        limits = Limits(self.settings.ingest_max_file_mb * 2**20, self.settings.ingest_max_unzipped_mb * 2**20)
        return IngestDeps(
            self.db.pool,
            self.db.space,
            embedder,
            chunker,
            limits,
            self.settings.pdf_strategy,
            settings_fingerprint(self.settings),
            Tokenizer(TokenizerSpec.of(self.settings)),
        )


def payload(request: IngestRequest, batch_id: uuid.UUID) -> dict[str, Any]:
    return {
        "batch_id": str(batch_id),
        "path": str(request.path),
        "source_uri": request.source_uri,
        "tenant_id": request.access.tenant_id,
        "groups": list(request.access.groups),
        "title": request.title,
        "url": request.url,
        "metadata": dict(request.metadata),
    }


def request_from(data: dict[str, Any]) -> IngestRequest:
    return IngestRequest(
        Path(data["path"]),
        data["source_uri"],
        AccessList(data["tenant_id"], tuple(data["groups"])),
        data.get("title"),
        data.get("url"),
        data.get("metadata") or {},
    )


def _record_failure(
    runtime: WorkerRuntime, data: dict[str, Any], job_id: int | None, attempt: int, final: bool, message: str
) -> None:
    result = IngestResult(data["source_uri"], "failed", message)
    try:
        with runtime.db.pool.connection() as conn:
            store.record_result(
                conn,
                batch_id=uuid.UUID(data["batch_id"]),
                job_id=job_id,
                tenant_id=data["tenant_id"],
                result=result,
                attempt=attempt,
                final=final,
            )
    except psycopg.Error:
        log.warning("could not record the failure", extra={"source_uri": data["source_uri"]})


def run_ingest_job(runtime: WorkerRuntime, context: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    job = context.job
    attempt = job.attempts + 1
    last_attempt = attempt >= runtime.settings.job_max_attempts
    batch_id = uuid.UUID(data["batch_id"])

    def record(conn: psycopg.Connection[tuple[object, ...]], result: IngestResult) -> None:
        store.record_result(
            conn, batch_id=batch_id, job_id=job.id, tenant_id=data["tenant_id"], result=result, attempt=attempt
        )

    try:
        result = ingest_file(runtime.deps(), request_from(data), record)
    except SourcebookError as exc:
        permanent = exc.code in PERMANENT
        _record_failure(runtime, data, job.id, attempt, permanent or last_attempt, str(exc))
        if permanent:
            raise PermanentIngestError(str(exc)) from exc
        raise TransientIngestError(str(exc)) from exc
    except (psycopg.Error, OSError) as exc:
        _record_failure(runtime, data, job.id, attempt, last_attempt, f"{type(exc).__name__}: {exc}")
        raise TransientIngestError(str(exc)) from exc
    except Exception as exc:
        # A bug or a library failing in a way we did not foresee: record it (so `sourcebook ingest` and
        # `sourcebook jobs` show it and never wait for a result that can't come) and retry.
        log.exception("ingestion failed unexpectedly", extra={"source_uri": data["source_uri"]})
        _record_failure(runtime, data, job.id, attempt, last_attempt, f"unexpected {type(exc).__name__}: {exc}")
        raise TransientIngestError(f"{type(exc).__name__}: {exc}") from exc
    return {"outcome": result.outcome, "chunks": result.chunks, "embedded": result.embedded}


def build_app(settings: Settings, url: str) -> App:
    """The procrastinate app with Sourcebook's ingestion task registered."""
    app = App(connector=PsycopgConnector(conninfo=url))
    # procrastinate counts retries, the setting counts attempts (the first run included).
    retry: RetryStrategy | bool = (
        RetryStrategy(
            max_attempts=settings.job_max_attempts - 1,
            exponential_wait=settings.job_retry_base_s,
            retry_exceptions={TransientIngestError},
        )
        if settings.job_max_attempts > 1
        else False
    )

    @app.task(name=TASK_NAME, queue=QUEUE, pass_context=True, retry=retry)
    def ingest_file_task(context: JobContext, /, **data: Any) -> dict[str, Any]:
        runtime = context.additional_context["runtime"]
        assert isinstance(runtime, WorkerRuntime)
        return run_ingest_job(runtime, context, data)

    return app


async def _defer(app: App, batch: Sequence[tuple[IngestRequest, uuid.UUID]]) -> list[int]:
    task = app.tasks[TASK_NAME]
    ids = []
    async with app.open_async():
        for request, batch_id in batch:
            lock = f"{request.access.tenant_id}:{request.source_uri}"
            try:
                ids.append(
                    await task.configure(lock=lock, queueing_lock=lock).defer_async(**payload(request, batch_id))
                )
            except AlreadyEnqueued:
                log.info("already queued", extra={"source_uri": request.source_uri})
    return ids


def enqueue(app: App, requests: Sequence[IngestRequest], batch_id: uuid.UUID) -> list[int]:
    """Queue one job per file; a file already waiting in the queue is not queued twice."""
    return asyncio.run(_defer(app, [(r, batch_id) for r in requests]))


async def recover_stalled(app: App, stalled_after_s: float) -> int:
    """Put back in the queue the jobs of workers whose heartbeat stopped (killed mid-job)."""
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s))
    for job in stalled:
        log.warning("retrying a job of a stalled worker", extra={"job_id": job.id})
        await app.job_manager.retry_job(job)
    return len(stalled)


async def run_worker(app: App, runtime: WorkerRuntime, *, wait: bool, install_signal_handlers: bool) -> None:
    """Run one worker: drain the queue and return (``wait=False``), or serve until stopped."""
    settings = runtime.settings
    async with app.open_async():
        await recover_stalled(app, settings.worker_stalled_after_s)
        await app.run_worker_async(
            queues=[QUEUE],
            wait=wait,
            concurrency=settings.ingest_concurrency,
            additional_context={"runtime": runtime},
            install_signal_handlers=install_signal_handlers,
            listen_notify=wait,
            update_heartbeat_interval=settings.worker_heartbeat_s,
            stalled_worker_timeout=settings.worker_stalled_after_s,
            fetch_job_polling_interval=1.0,
        )
