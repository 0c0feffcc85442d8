"""Documents over HTTP: uploads checked and planned like `sourcebook ingest` plans files, the
tenant's documents listed, shown and deleted, and ingestion jobs followed.

An uploaded file is streamed to a private temporary file (hashed and size-checked on the way),
typed by its content (``ingest.detect.sniff``: the name only picks between text flavours), and then
kept in the ``uploads`` table until its job has run: workers on any machine read it from there, and
the client's file name is never part of a path. An upload whose content the tenant already has
under the same name and access is ``unchanged`` and costs nothing.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from psycopg.rows import dict_row

from ingest import store
from ingest.detect import MIME_TYPES, Limits, sniff
from ingest.pipeline import classify
from ingest.types import INGEST_TASK, AccessList, IngestRequest, IngestResult
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError

UPLOAD_SCHEME = "upload://"
_SUFFIX = re.compile(r"\.[a-z0-9]{1,10}")
_MAX_NAME = 200
_DOC_FIELDS = (
    "id, source_uri, title, mime_type, status, error, version, chunk_count, size_bytes, acl_groups, metadata, "
    "content_hash, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """An upload on local disk, as received: never trusted beyond its bytes."""

    filename: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class PlannedUpload:
    file: ReceivedFile
    request: IngestRequest
    mime_type: str
    action: Literal["queue", "unchanged"]


def safe_filename(name: str | None) -> str:
    """A display name from the client's: its last path part, printable, at most 200 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C").strip()
    cleaned = cleaned.lstrip(".") or "upload"
    return cleaned[:_MAX_NAME]


def local_name(filename: str) -> str:
    """The temporary file's name: fixed, with the client's extension when it is a plain one (it picks
    Markdown vs text, as on disk; the type itself is decided by content)."""
    suffix = Path(filename).suffix.lower()
    return "upload" + (suffix if _SUFFIX.fullmatch(suffix) else "")


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plan_uploads(
    conn: Conn,
    files: Sequence[ReceivedFile],
    *,
    manager: Reader,
    access: AccessList,
    source_uris: Sequence[str],
    titles: Sequence[str | None],
    metadata: Mapping[str, Any],
    fingerprint: str,
    limits: Limits,
) -> list[PlannedUpload]:
    """Type every file and decide whether it needs a job; one bad file refuses the whole request
    (nothing is stored), with the file named. A stored document is replaced only by a ``manager``
    who may manage it; to anyone else it is ``not_found``, as a document they can't see."""
    typed = []
    for received in files:
        try:
            kind = sniff(received.path, limits)
        except SourcebookError as exc:
            raise SourcebookError(exc.code, f"{received.filename}: {exc.message}", hint=exc.hint) from exc
        typed.append(MIME_TYPES[kind])
    pairs = zip(source_uris, titles, strict=True)
    requests = [IngestRequest(Path(), uri, access, title, None, metadata) for uri, title in pairs]
    stored = store.find_documents(conn, tenant_id=access.tenant_id, uris=list(source_uris))
    for uri, existing in stored.items():
        if not may_manage(manager, existing.acl_groups):
            raise SourcebookError(
                ErrorCode.NOT_FOUND,
                f"no document {uri[:80]!r} that this API key may replace",
                hint="upload under another name, or ask a member of the document's groups or an admin",
            )
    planned = []
    for received, request, mime in zip(files, requests, typed, strict=True):
        change = classify(stored.get(request.source_uri), request, received.sha256, fingerprint)
        planned.append(PlannedUpload(received, request, mime, "unchanged" if change == "unchanged" else "queue"))
    return planned


def save_upload(conn: Conn, planned: PlannedUpload) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO uploads (tenant_id, filename, mime_type, size_bytes, sha256, data) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (
            planned.request.access.tenant_id,
            planned.file.filename,
            planned.mime_type,
            planned.file.size,
            planned.file.sha256,
            planned.file.path.read_bytes(),
        ),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def record_unchanged(conn: Conn, *, batch_id: uuid.UUID, planned: PlannedUpload) -> None:
    store.record_result(
        conn,
        batch_id=batch_id,
        job_id=None,
        tenant_id=planned.request.access.tenant_id,
        result=IngestResult(planned.request.source_uri, "unchanged", "same content and access as stored"),
    )


@dataclass(frozen=True, slots=True)
class Reader:
    """Whose documents: the tenant's, and (unless ``groups`` is None, for admins) only those whose
    access list shares a group with the caller's."""

    tenant_id: str
    groups: Sequence[str] | None


def may_manage(reader: Reader, acl_groups: Sequence[str]) -> bool:
    """Whether the reader may replace or delete a document with this access list."""
    return reader.groups is None or bool(set(reader.groups) & set(acl_groups))


_VISIBLE = "tenant_id = %(tenant)s AND (%(groups)s::text[] IS NULL OR acl_groups && %(groups)s::text[])"


def _who(reader: Reader) -> dict[str, Any]:
    return {"tenant": reader.tenant_id, "groups": None if reader.groups is None else list(reader.groups)}


def list_documents(
    conn: Conn, reader: Reader, *, status: str | None, source_prefix: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """The reader's documents ordered by source URI; ``after`` is the last URI of the previous page."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_DOC_FIELDS} FROM documents WHERE {_VISIBLE} "
            "AND (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(prefix)s::text IS NULL OR starts_with(source_uri, %(prefix)s)) "
            "AND (%(after)s::text IS NULL OR source_uri > %(after)s) "
            "ORDER BY source_uri LIMIT %(limit)s",
            _who(reader) | {"status": status, "prefix": source_prefix, "after": after, "limit": limit},
        ).fetchall()


def get_document(conn: Conn, reader: Reader, document_id: uuid.UUID) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_DOC_FIELDS} FROM documents WHERE {_VISIBLE} AND id = %(id)s", _who(reader) | {"id": document_id}
        ).fetchone()
        if row is None:
            raise SourcebookError(ErrorCode.NOT_FOUND, f"no document {document_id}")
        row["ingestions"] = cur.execute(
            "SELECT job_id, outcome, detail, attempt, final, chunks, embedded, created_at FROM ingest_results "
            "WHERE tenant_id = %s AND source_uri = %s ORDER BY id DESC LIMIT 10",
            (reader.tenant_id, row["source_uri"]),
        ).fetchall()
    return row


def delete_document(conn: Conn, reader: Reader, document_id: uuid.UUID) -> str:
    """Delete the document with its chunks and keyword statistics, and cancel a job of it still
    waiting (with its upload), so that nothing brings it back; returns its source URI."""
    with conn.transaction():
        row = conn.execute(
            f"SELECT source_uri FROM documents WHERE {_VISIBLE} AND id = %(id)s FOR UPDATE",
            _who(reader) | {"id": document_id},
        ).fetchone()
        if row is None:
            raise SourcebookError(ErrorCode.NOT_FOUND, f"no document {document_id}")
        uri = str(row[0])
        waiting = conn.execute(
            "SELECT id, args->>'upload_id' FROM procrastinate_jobs WHERE task_name = %s "
            "AND status = 'todo' AND args->>'tenant_id' = %s AND args->>'source_uri' = %s",
            (INGEST_TASK, reader.tenant_id, uri),
        ).fetchall()
        for job_id, upload_id in waiting:
            conn.execute("SELECT procrastinate_cancel_job_v1(%s, false, true)", (job_id,))
            if upload_id:
                store.drop_uploads(conn, [uuid.UUID(str(upload_id))])
        store.delete_document(conn, document_id=document_id)
        store.record_result(
            conn,
            batch_id=uuid.uuid4(),
            job_id=None,
            tenant_id=reader.tenant_id,
            result=IngestResult(uri, "removed", "deleted through the API"),
        )
    return uri


def get_job(conn: Conn, reader: Reader, job_id: int) -> dict[str, Any]:
    """An ingestion job of the reader's: its queue state and every result recorded for it."""
    with conn.cursor(row_factory=dict_row) as cur:
        job = cur.execute(
            "SELECT id, status::text AS status, attempts, args->>'source_uri' AS source_uri, "
            "args->>'upload_id' AS upload_id, scheduled_at FROM procrastinate_jobs "
            "WHERE id = %(id)s AND task_name = %(task)s AND args->>'tenant_id' = %(tenant)s "
            "AND (%(groups)s::text[] IS NULL OR (args->'groups') ?| %(groups)s::text[])",
            _who(reader) | {"id": job_id, "task": INGEST_TASK},
        ).fetchone()
        if job is None:
            raise SourcebookError(ErrorCode.NOT_FOUND, f"no ingestion job {job_id}")
        job["results"] = cur.execute(
            "SELECT outcome, detail, attempt, final, chunks, embedded, document_id, created_at FROM ingest_results "
            "WHERE job_id = %s ORDER BY id",
            (job_id,),
        ).fetchall()
    return job
