"""The upload service behind ``POST /v1/documents``: plan the received files and store them in one
transaction, and queue one ingestion job per new or changed file.

One bad file refuses the whole request, with the file named, and nothing is kept. Stored uploads
whose job could not be queued are deleted again; anything a crash leaves behind is swept by the
workers' periodic ``sweep_uploads``. Reading the multipart form is the web's (``serving.forms``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from procrastinate import App
from psycopg_pool import ConnectionPool

from ingest import store
from ingest.detect import Limits
from ingest.documents import PlannedUpload, Reader, ReceivedFile, plan_uploads, record_unchanged, save_upload
from ingest.jobs import defer_upload, settings_fingerprint
from ingest.types import AccessList
from sourcebook.db import Conn
from sourcebook.settings import Settings


@dataclass(frozen=True, slots=True)
class UploadBatch:
    """An upload request, checked: each file's identity and title, the access list and metadata they
    share, and whose documents they may replace."""

    access: AccessList
    source_uris: list[str]
    titles: list[str | None]
    metadata: dict[str, Any]
    manager: Reader


class Uploads:
    def __init__(self, settings: Settings, pool: ConnectionPool[Conn], jobs: App) -> None:
        self._settings = settings
        self._pool = pool
        self._jobs = jobs

    async def accept(
        self, batch: UploadBatch, received: Sequence[ReceivedFile]
    ) -> tuple[uuid.UUID, list[dict[str, Any]]]:
        """Plan, store and queue received files (on disk until this returns); returns the batch id
        and each file's entry."""
        batch_id = uuid.uuid4()
        stored = await anyio.to_thread.run_sync(self._plan_and_store, batch, received, batch_id)
        return batch_id, await self._queue(stored, batch_id)

    def _plan_and_store(
        self, batch: UploadBatch, received: Sequence[ReceivedFile], batch_id: uuid.UUID
    ) -> list[tuple[PlannedUpload, uuid.UUID | None]]:
        settings = self._settings
        limits = Limits(
            min(settings.upload_max_mb, settings.ingest_max_file_mb) * 2**20, settings.ingest_max_unzipped_mb * 2**20
        )
        with self._pool.connection() as conn:
            planned = plan_uploads(
                conn,
                received,
                manager=batch.manager,
                access=batch.access,
                source_uris=batch.source_uris,
                titles=batch.titles,
                metadata=batch.metadata,
                fingerprint=settings_fingerprint(settings),
                limits=limits,
            )
            stored: list[tuple[PlannedUpload, uuid.UUID | None]] = []
            with conn.transaction():
                for item in planned:
                    if item.action == "queue":
                        stored.append((item, save_upload(conn, item)))
                    else:
                        record_unchanged(conn, batch_id=batch_id, planned=item)
                        stored.append((item, None))
        return stored

    async def _queue(
        self, stored: list[tuple[PlannedUpload, uuid.UUID | None]], batch_id: uuid.UUID
    ) -> list[dict[str, Any]]:
        entries = []
        handed: set[uuid.UUID] = set()
        try:
            for item, upload_id in stored:
                entry: dict[str, Any] = {
                    "filename": item.file.filename,
                    "source_uri": item.request.source_uri,
                    "mime_type": item.mime_type,
                    "size_bytes": item.file.size,
                    "sha256": item.file.sha256,
                    "status": "unchanged",
                    "job_id": None,
                }
                if upload_id is not None:
                    job_id = await defer_upload(self._jobs, item.request, batch_id, upload_id)
                    handed.add(upload_id)
                    if job_id is None:
                        await anyio.to_thread.run_sync(self._drop, [upload_id])
                        entry["status"] = "already_queued"
                        entry["detail"] = "a job for this document is waiting; upload again once it has run"
                    else:
                        entry |= {"status": "queued", "job_id": job_id, "upload_id": str(upload_id)}
                entries.append(entry)
        except BaseException:
            # The queue failed (database gone, request cancelled): no upload stays behind without its job.
            orphans = [u for _, u in stored if u is not None and u not in handed]
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._drop, orphans)
            raise
        return entries

    def _drop(self, upload_ids: list[uuid.UUID]) -> None:
        if upload_ids:
            with self._pool.connection() as conn:
                store.drop_uploads(conn, upload_ids)
