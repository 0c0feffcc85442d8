"""Ingestion as jobs on procrastinate (PostgreSQL-backed): one job per file.

A job that fails for a passing reason (database, I/O) is retried with exponential backoff; one that
fails for a reason retrying can't fix (corrupt file, unknown type, too large) fails at once with its
reason. Jobs of a document share a lock, so two workers never write the same document. A worker
killed mid-job leaves nothing visible (the document is written in one transaction at the end) and
the job, left in ``doing`` by a worker whose heartbeat stopped, is retried by the next worker to start.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued
from psycopg_pool import PoolTimeout

from ingest import store, tuning
from ingest.chunk import Chunker, ChunkSettings
from ingest.detect import MIME_TYPES, Limits
from ingest.embed import SentenceTransformerEmbedder
from ingest.pipeline import IngestDeps, fingerprint, ingest_file
from ingest.types import INGEST_TASK, AccessList, ChunkScreen, IngestRequest, IngestResult
from retrieval.tokenize import Tokenizer, TokenizerSpec
from sourcebook.db import Database
from sourcebook.db.connect import lost_connection
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.memory import trim_heap
from sourcebook.models import resolve_model
from sourcebook.settings import Settings

log = logging.getLogger(__name__)

QUEUE = "ingest"
# Calibration (minutes of model calls on a CPU) has a queue of its own: `sourcebook ingest --wait`
# drains the ingest queue and returns; a standing worker (`sourcebook worker`) serves both.
TUNE_QUEUE = "tuning"
WORKER_QUEUES = (QUEUE, TUNE_QUEUE)
SWEEP_TASK = "sourcebook.sweep_uploads"
SWEEP_CRON = "*/15 * * * *"
# An upload younger than this may still be about to get its job (stored, not yet queued).
UPLOAD_GRACE_S = 3600
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
_FILE_TYPES = {mime: kind for kind, mime in MIME_TYPES.items()}
# Waits between tries to record a failure while the database recovers from a crashed backend.
RECORD_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 0.0)


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
    """A worker's heavy state, built once on the first job: the embedder and the chunker around it, and
    the threads jobs run in."""

    settings: Settings
    db: Database
    # Chosen by the composition root (the CLI: `guardrails.screen.load_screen`); None stores chunks
    # unscanned until `sourcebook guard scan`.
    screen: ChunkScreen | None = None
    _deps: IngestDeps | None = None
    _building: threading.Lock = field(default_factory=threading.Lock)
    # One thread per concurrent job, kept for the worker's life (and across its runs). Not the event
    # loop's default executor: that one adds a thread whenever a job is submitted while its threads look
    # busy, and jobs then wander over up to six threads, each keeping its own malloc arena at the
    # high-water mark of the largest file it handled, its own tokenizer copy and OpenMP team (RSS then
    # climbs with every file: bench/README.md, Ingestion).
    # Made here (threads start lazily), not under the model-building lock, which a job's thread holds
    # for a whole model load while the event loop hands out the next job.
    threads: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.threads = ThreadPoolExecutor(self.settings.ingest_concurrency, thread_name_prefix="ingest-job")

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
            self.settings.ingest_concurrency,
            self.screen,
        )


def payload(request: IngestRequest, batch_id: uuid.UUID, upload_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "batch_id": str(batch_id),
        "upload_id": None if upload_id is None else str(upload_id),
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


@contextmanager
def _materialized(runtime: WorkerRuntime, data: dict[str, Any]) -> Iterator[IngestRequest]:
    """The job's request; an uploaded file is first written from the ``uploads`` table to a private
    temporary file named by its type (the client's name is never a path)."""
    request = request_from(data)
    if not data.get("upload_id"):
        yield request
        return
    with runtime.db.pool.connection() as conn:
        upload = store.read_upload(conn, upload_id=uuid.UUID(data["upload_id"]), tenant_id=data["tenant_id"])
    if upload is None:
        raise SourcebookError(ErrorCode.NOT_FOUND, "the uploaded file is gone (deleted before its job ran)")
    mime, content = upload
    with tempfile.TemporaryDirectory(prefix="sourcebook-upload-") as folder:
        path = Path(folder) / f"upload.{_FILE_TYPES[mime]}"
        path.write_bytes(content)
        del upload, content
        yield replace(request, path=path)


def _drop_upload(conn: psycopg.Connection[tuple[object, ...]], data: dict[str, Any]) -> None:
    if data.get("upload_id"):
        store.drop_uploads(conn, [uuid.UUID(data["upload_id"])])


def _record_failure(
    runtime: WorkerRuntime, data: dict[str, Any], job_id: int | None, attempt: int, final: bool, message: str
) -> None:
    result = IngestResult(data["source_uri"], "failed", message)
    # After a backend crash the server restarts every backend and refuses connections for a moment.
    for pause in RECORD_PAUSES_S:
        try:
            with runtime.db.pool.connection() as conn:
                if final:
                    _drop_upload(conn, data)
                store.record_result(
                    conn,
                    batch_id=uuid.UUID(data["batch_id"]),
                    job_id=job_id,
                    tenant_id=data["tenant_id"],
                    result=result,
                    attempt=attempt,
                    final=final,
                )
            return
        except (psycopg.Error, PoolTimeout):
            time.sleep(pause)
    log.warning("could not record the failure", extra={"source_uri": data["source_uri"]})


def run_ingest_job(runtime: WorkerRuntime, context: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    job = context.job
    attempt = job.attempts + 1
    last_attempt = attempt >= runtime.settings.job_max_attempts
    batch_id = uuid.UUID(data["batch_id"])

    def record(conn: psycopg.Connection[tuple[object, ...]], result: IngestResult) -> None:
        # In the transaction that writes the document: the upload goes when its document is there.
        _drop_upload(conn, data)
        store.record_result(
            conn, batch_id=batch_id, job_id=job.id, tenant_id=data["tenant_id"], result=result, attempt=attempt
        )

    try:
        with _materialized(runtime, data) as request:
            result = ingest_file(runtime.deps(), request, record)
    except SourcebookError as exc:
        permanent = exc.code in PERMANENT
        _record_failure(runtime, data, job.id, attempt, permanent or last_attempt, str(exc))
        if permanent:
            raise PermanentIngestError(str(exc)) from exc
        raise TransientIngestError(str(exc)) from exc
    except (psycopg.Error, PoolTimeout, OSError) as exc:
        lost = lost_connection(exc)
        message = lost.message if lost else f"{type(exc).__name__}: {exc}"
        _record_failure(runtime, data, job.id, attempt, last_attempt, message)
        raise TransientIngestError(message) from exc
    except Exception as exc:
        # A bug or a library failing in a way we did not foresee: record it (so `sourcebook ingest` and
        # `sourcebook jobs` show it and never wait for a result that can't come) and retry.
        log.exception("ingestion failed unexpectedly", extra={"source_uri": data["source_uri"]})
        _record_failure(runtime, data, job.id, attempt, last_attempt, f"unexpected {type(exc).__name__}: {exc}")
        raise TransientIngestError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        if runtime.settings.ingest_trim_memory:
            trim_heap()
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

    @app.task(name=INGEST_TASK, queue=QUEUE, pass_context=True, retry=retry)
    async def ingest_file_task(context: JobContext, /, **data: Any) -> dict[str, Any]:
        runtime = context.additional_context["runtime"]
        assert isinstance(runtime, WorkerRuntime)
        job = functools.partial(contextvars.copy_context().run, run_ingest_job, runtime, context, data)
        result = await asyncio.get_running_loop().run_in_executor(runtime.threads, job)
        tenant = data["tenant_id"]
        if result["outcome"] in ("ingested", "updated"):
            await asyncio.to_thread(store.refresh_statistics_after_writes, runtime.db.pool)
            if await asyncio.to_thread(tuning.due, runtime.settings, runtime.db, tenant):
                await tuning.defer_tuning(app, tenant, delay_s=tuning.AUTO_DELAY_S)
        return result

    @app.task(name=tuning.TUNE_TASK, queue=TUNE_QUEUE, pass_context=True)
    async def tune_retrieval_task(context: JobContext, /, tenant_id: str) -> dict[str, Any]:
        runtime = context.additional_context["runtime"]
        assert isinstance(runtime, WorkerRuntime)

        def tune() -> dict[str, Any]:
            done = tuning.run_calibration(runtime.settings, runtime.db, runtime.deps().embedder, tenant_id)
            return {"chosen": done.tuning.label(), "question_source": done.question_source, **done.figures}

        return await asyncio.get_running_loop().run_in_executor(runtime.threads, tune)

    @app.periodic(cron=SWEEP_CRON, periodic_id="uploads")
    @app.task(name=SWEEP_TASK, queue=QUEUE, pass_context=True)
    async def sweep_uploads_task(context: JobContext, timestamp: int) -> int:
        """Uploads no job will read any more (see ``store.sweep_uploads``)."""
        runtime = context.additional_context["runtime"]
        assert isinstance(runtime, WorkerRuntime)

        def sweep() -> int:
            with runtime.db.pool.connection() as conn:
                return store.sweep_uploads(conn, older_than_s=UPLOAD_GRACE_S)

        swept = await asyncio.to_thread(sweep)
        if swept:
            log.warning("deleted uploads that no job would read", extra={"uploads": swept})
        return swept

    return app


async def _defer(app: App, batch: Sequence[tuple[IngestRequest, uuid.UUID]]) -> list[int]:
    task = app.tasks[INGEST_TASK]
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


async def defer_upload(app: App, request: IngestRequest, batch_id: uuid.UUID, upload_id: uuid.UUID) -> int | None:
    """Queue the job of one uploaded file (``app`` open); None when that document already has one waiting."""
    lock = f"{request.access.tenant_id}:{request.source_uri}"
    try:
        job_id: int = await (
            app.tasks[INGEST_TASK]
            .configure(lock=lock, queueing_lock=lock)
            .defer_async(**payload(request, batch_id, upload_id))
        )
    except AlreadyEnqueued:
        return None
    return job_id


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


async def run_worker(
    app: App,
    runtime: WorkerRuntime,
    *,
    wait: bool,
    install_signal_handlers: bool,
    queues: Sequence[str] = WORKER_QUEUES,
) -> None:
    """Run one worker on ``queues``: drain them and return (``wait=False``), or serve until stopped."""
    settings = runtime.settings
    async with app.open_async():
        await recover_stalled(app, settings.worker_stalled_after_s)
        await app.run_worker_async(
            queues=list(queues),
            wait=wait,
            concurrency=settings.ingest_concurrency,
            additional_context={"runtime": runtime},
            install_signal_handlers=install_signal_handlers,
            listen_notify=wait,
            update_heartbeat_interval=settings.worker_heartbeat_s,
            stalled_worker_timeout=settings.worker_stalled_after_s,
            fetch_job_polling_interval=1.0,
        )
