"""The upload service behind ``POST /v1/documents``: read the form, receive each file into a private
temporary folder (hashed and size-checked on the way), plan and store them in one transaction, and
queue one ingestion job per new or changed file.

One bad file refuses the whole request, with the file named, and nothing is kept. Stored uploads
whose job could not be queued are deleted again; anything a crash leaves behind is swept by the
workers' periodic ``sweep_uploads``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from procrastinate import App
from psycopg_pool import ConnectionPool
from starlette.datastructures import FormData, UploadFile

from ingest import store
from ingest.access import resolve_access
from ingest.detect import Limits
from ingest.jobs import defer_upload, settings_fingerprint
from ingest.types import AccessList
from serving.documents import (
    UPLOAD_SCHEME,
    PlannedUpload,
    Reader,
    ReceivedFile,
    local_name,
    plan_uploads,
    record_unchanged,
    safe_filename,
    save_upload,
)
from serving.provenance import Conn
from serving.wire import utf8
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import Principal
from sourcebook.settings import Settings

_READ_BLOCK = 1 << 20
MAX_URI = 2000
MAX_METADATA_DEPTH = 16


@dataclass(frozen=True, slots=True)
class UploadForm:
    files: list[UploadFile]
    access: AccessList
    source_uris: list[str]
    titles: list[str | None]
    metadata: dict[str, Any]
    manager: Reader


def read_form(form: FormData, principal: Principal) -> UploadForm:
    """The upload form, checked. Without the ``admin`` scope a ``source_uri`` must be an
    ``upload://`` one, so an upload can't replace a document ingested from a folder, and the access
    list may only hold the key's own groups (``public`` is the group ``everyone``: a key may publish
    when it belongs to it)."""
    admin = "admin" in principal.scopes
    tenant_id = principal.tenant_id
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "no file in the form", hint="send the field `file`")
    groups = [g.strip() for value in form.getlist("groups") if isinstance(value, str) for g in value.split(",")]
    public = str(form.get("public", "false")).strip().lower() in {"1", "true", "yes", "on"}
    access = resolve_access(tenant_id, [g for g in groups if g], public=public, sidecar=None)
    foreign = sorted(set(access.groups) - set(principal.groups))
    if foreign and not admin:
        raise SourcebookError(
            ErrorCode.FORBIDDEN,
            f"this API key may not assign the group(s) {', '.join(map(repr, foreign))}",
            hint="assign only groups the key belongs to (public needs the group everyone), or use an admin key",
        )
    given = [str(v).strip() for v in form.getlist("source_uri")]
    if given and len(given) != len(files):
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST, f"{len(given)} source_uri values for {len(files)} files: give one per file"
        )
    uris = given or [UPLOAD_SCHEME + safe_filename(f.filename) for f in files]
    for uri in uris:
        if not uri or len(uri) > MAX_URI or any(ord(ch) < 32 for ch in uri):
            raise SourcebookError(ErrorCode.INVALID_REQUEST, f"invalid source_uri {uri[:80]!r}")
        if not admin and not uri.startswith(UPLOAD_SCHEME):
            raise SourcebookError(
                ErrorCode.FORBIDDEN,
                f"source_uri {uri[:80]!r}: only admins may name a document outside {UPLOAD_SCHEME}",
                hint=f"use {UPLOAD_SCHEME}<name>, or a key with the admin scope",
            )
    if len(set(uris)) != len(uris):
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            "two files of the request would be the same document",
            hint="give each file its own name or source_uri",
        )
    title = form.get("title")
    if title is not None and "\x00" in str(title):
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "title must not contain NUL characters")
    if title is not None and len(files) > 1:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "title is for a single file; it was sent with several")
    titles = [None if title is None else str(title)] * len(files)
    manager = Reader(tenant_id, None if admin else principal.groups)
    return UploadForm(files, access, uris, titles, _metadata(form), manager)


def _metadata(form: FormData) -> dict[str, Any]:
    raw = form.get("metadata")
    if raw is None or raw == "":
        return {}
    try:
        value = json.loads(str(raw), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            "metadata is not valid JSON",
            hint=f"a JSON object, nested at most {MAX_METADATA_DEPTH} deep, without NaN or Infinity",
        ) from exc
    if not isinstance(value, dict):
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "metadata must be a JSON object")
    problem = _storable(value, MAX_METADATA_DEPTH)
    if problem:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"metadata {problem}")
    return value


def _no_constant(name: str) -> float:
    # PostgreSQL's jsonb holds no NaN or Infinity, and JSON itself has none.
    raise ValueError(f"{name} is not JSON")


def _storable(value: Any, depth: int) -> str | None:
    """Why jsonb (and PostgreSQL text) would refuse the value, or None."""
    if depth < 0:
        return f"is nested more than {MAX_METADATA_DEPTH} deep"
    if isinstance(value, str):
        return "must not contain NUL characters" if "\x00" in value else _surrogate(value)
    if isinstance(value, dict):
        return next((p for k, v in value.items() for p in (_storable(k, depth), _storable(v, depth - 1)) if p), None)
    if isinstance(value, list):
        return next((p for v in value if (p := _storable(v, depth - 1))), None)
    return None


def _surrogate(text: str) -> str | None:
    try:
        utf8(text)
    except ValueError as exc:
        return str(exc)
    return None


async def receive(upload: UploadFile, folder: Path, max_bytes: int) -> ReceivedFile:
    """Copy one uploaded file to ``folder`` under a fixed name, hashing and size-checking it."""
    filename = safe_filename(upload.filename)
    path = folder / local_name(filename)
    digest = hashlib.sha256()
    size = 0
    async with await anyio.open_file(path, "wb") as out:
        while block := await upload.read(_READ_BLOCK):
            size += len(block)
            if size > max_bytes:
                raise SourcebookError(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"{filename}: over the upload limit of {max_bytes / 2**20:.0f} MiB",
                    hint="split the file, or raise SOURCEBOOK_UPLOAD_MAX_MB",
                )
            digest.update(block)
            await out.write(block)
    return ReceivedFile(filename, path, size, digest.hexdigest())


class Uploads:
    def __init__(self, settings: Settings, pool: ConnectionPool[Conn], jobs: App) -> None:
        self._settings = settings
        self._pool = pool
        self._jobs = jobs

    async def accept(self, form: UploadForm) -> tuple[uuid.UUID, list[dict[str, Any]]]:
        """Receive, plan, store and queue the form's files; returns the batch id and each file's entry."""
        batch_id = uuid.uuid4()
        with tempfile.TemporaryDirectory(prefix="sourcebook-upload-") as tmp:
            received = []
            for i, file in enumerate(form.files):
                folder = Path(tmp) / str(i)
                folder.mkdir()
                received.append(await receive(file, folder, self._settings.upload_max_mb * 2**20))
            stored = await anyio.to_thread.run_sync(self._plan_and_store, form, received, batch_id)
        return batch_id, await self._queue(stored, batch_id)

    def _plan_and_store(
        self, form: UploadForm, received: list[ReceivedFile], batch_id: uuid.UUID
    ) -> list[tuple[PlannedUpload, uuid.UUID | None]]:
        settings = self._settings
        limits = Limits(
            min(settings.upload_max_mb, settings.ingest_max_file_mb) * 2**20, settings.ingest_max_unzipped_mb * 2**20
        )
        with self._pool.connection() as conn:
            planned = plan_uploads(
                conn,
                received,
                manager=form.manager,
                access=form.access,
                source_uris=form.source_uris,
                titles=form.titles,
                metadata=form.metadata,
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
