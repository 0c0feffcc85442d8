"""The documents and chunks repository. All of ingestion's SQL lives here; the caller owns the transaction.

A document version is written in one transaction: the ``documents`` row is upserted (its version
goes up), its old chunks are deleted and the new ones inserted, so a reader sees the old version or
the new one, never a mix. Chunks are deleted with their document (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest.types import INGEST_TASK, Chunk, IngestResult
from retrieval.types import ChunkMark
from sourcebook.db import Conn
from sourcebook.db.spaces import EmbeddingSpace

log = logging.getLogger(__name__)


def chunk_hash(embed_text: str) -> str:
    return hashlib.sha256(embed_text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredDocument:
    id: uuid.UUID
    source_uri: str
    content_hash: str
    ingest_fingerprint: str
    acl_groups: list[str]
    title: str
    metadata: dict[str, Any]
    version: int
    chunk_count: int


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    tenant_id: str
    source_uri: str
    title: str
    mime_type: str
    content_hash: str
    size_bytes: int
    acl_groups: tuple[str, ...]
    fingerprint: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


_DOC_COLUMNS = "id, source_uri, content_hash, ingest_fingerprint, acl_groups, title, metadata, version, chunk_count"


def find_documents(conn: Conn, *, tenant_id: str, uris: Sequence[str]) -> dict[str, StoredDocument]:
    rows = (
        conn.cursor(row_factory=class_row(StoredDocument))
        .execute(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE tenant_id = %s AND source_uri = ANY(%s)",
            (tenant_id, list(uris)),
        )
        .fetchall()
    )
    return {row.source_uri: row for row in rows}


def documents_under(conn: Conn, *, tenant_id: str, prefix: str) -> list[StoredDocument]:
    """The tenant's documents whose source URI starts with ``prefix`` (for ``--sync``)."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return (
        conn.cursor(row_factory=class_row(StoredDocument))
        .execute(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE tenant_id = %s AND source_uri LIKE %s ORDER BY source_uri",
            (tenant_id, pattern),
        )
        .fetchall()
    )


# The search's tables, and how far their rows may change before the planner's statistics are refreshed
# at the end of an ingest job (autovacuum does it too, but up to a minute later): until then a tenant the
# planner has not seen is estimated at one row, which can turn the search into a nested loop over it.
SEARCHED_TABLES = ("chunks", "bm25_terms", "documents")
STALE_ROWS = 1000
STALE_SHARE = 0.2


def refresh_statistics(conn: Conn, *, rows: int = STALE_ROWS, share: float = STALE_SHARE) -> list[str]:
    """ANALYZE each searched table changed by more than ``rows`` rows and ``share`` of its rows since its
    statistics were taken; returns the tables analyzed. Each in a transaction of its own that skips a
    table another session holds (another worker analyzing it, a vacuum), so it never waits or piles up."""
    with conn.transaction():
        stale = conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ANY(%s) "
            "AND n_mod_since_analyze > greatest(%s, %s * n_live_tup) ORDER BY relname",
            (list(SEARCHED_TABLES), rows, share),
        ).fetchall()
    names = [str(r[0]) for r in stale]
    for name in names:
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = '60s'")
            conn.execute(sql.SQL("ANALYZE (SKIP_LOCKED) {}").format(sql.Identifier(name)))
    return names


def refresh_statistics_after_writes(pool: ConnectionPool[Conn]) -> None:
    """``refresh_statistics`` after an ingest's writes; a failure only leaves it to autovacuum a minute
    later, so it is logged, never the ingest's."""
    try:
        with pool.connection() as conn:
            analyzed = refresh_statistics(conn)
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("planner statistics not refreshed", extra={"error": str(exc)})
        return
    if analyzed:
        log.info("planner statistics refreshed", extra={"tables": analyzed})


def chunk_sources(conn: Conn, *, tenant_id: str) -> dict[int, str]:
    """Each of the tenant's chunks: its document's source URI."""
    rows = conn.execute(
        "SELECT c.id, d.source_uri FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.tenant_id = %s",
        (tenant_id,),
    ).fetchall()
    return {int(r[0]): str(r[1]) for r in rows}  # type: ignore[call-overload]


def find_duplicate(
    conn: Conn, *, tenant_id: str, content_hash: str, source_uri: str, groups: Sequence[str]
) -> str | None:
    """Another document of the tenant with the same bytes and the same access list, if any."""
    row = conn.execute(
        "SELECT source_uri FROM documents WHERE tenant_id = %s AND content_hash = %s AND source_uri <> %s "
        "AND acl_groups = %s ORDER BY created_at LIMIT 1",
        (tenant_id, content_hash, source_uri, list(groups)),
    ).fetchone()
    return str(row[0]) if row else None


def vectors_by_hash(
    conn: Conn, *, tenant_id: str, space: EmbeddingSpace, hashes: Sequence[str]
) -> dict[str, npt.NDArray[np.float32]]:
    """Stored vectors of this model for chunk texts the tenant already embedded once (any of its
    documents). Never another tenant's: how many chunks a job embedded would tell whether someone
    else holds the same text."""
    if not hashes:
        return {}
    rows = conn.execute(
        "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM chunks "
        "WHERE embedding_space_id = %s AND content_hash = ANY(%s) AND tenant_id = %s",
        (space.id, list(hashes), tenant_id),
    ).fetchall()
    return {str(h): np.asarray(v.to_numpy(), dtype=np.float32) for h, v in rows}  # type: ignore[attr-defined]


def write_document(
    conn: Conn,
    *,
    doc: DocumentRecord,
    chunks: Sequence[Chunk],
    vectors: npt.NDArray[np.float32],
    keywords: Sequence[tuple[str, int]],
    space: EmbeddingSpace,
    marks: Sequence[ChunkMark | None],
) -> uuid.UUID:
    """Replace the document's current version with this one (call inside a transaction).

    ``keywords`` holds each chunk's BM25 terms as a tsvector literal and its term count
    (``retrieval.tokenize.Tokenizer.tsvector``); ``marks`` each chunk's injection mark (None: not
    scanned yet).
    """
    row = conn.execute(
        "INSERT INTO documents (tenant_id, source_uri, title, mime_type, content_hash, size_bytes, acl_groups, "
        "status, metadata, ingest_fingerprint, chunk_count) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 'ready', %s, %s, %s) "
        "ON CONFLICT (tenant_id, source_uri) DO UPDATE SET title = EXCLUDED.title, mime_type = EXCLUDED.mime_type, "
        "content_hash = EXCLUDED.content_hash, size_bytes = EXCLUDED.size_bytes, acl_groups = EXCLUDED.acl_groups, "
        "status = 'ready', error = NULL, metadata = EXCLUDED.metadata, "
        "ingest_fingerprint = EXCLUDED.ingest_fingerprint, chunk_count = EXCLUDED.chunk_count, "
        "version = documents.version + 1, updated_at = now() "
        "RETURNING id",
        (
            doc.tenant_id,
            doc.source_uri,
            doc.title,
            doc.mime_type,
            doc.content_hash,
            doc.size_bytes,
            list(doc.acl_groups),
            Jsonb(dict(doc.metadata)),
            doc.fingerprint,
            len(chunks),
        ),
    ).fetchone()
    assert row is not None
    document_id = row[0]
    assert isinstance(document_id, uuid.UUID)
    conn.execute("DELETE FROM chunks WHERE document_id = %s", (document_id,))
    # One COPY statement: the BM25 statistics trigger runs once per document, not once per chunk.
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY chunks (document_id, tenant_id, ordinal, text, context, heading_path, page, token_count, "
            "acl_groups, content_hash, embedding_space_id, embedding, kind, bm25, bm25_len, guard_flags, guard_score, "
            "guard_screen) FROM STDIN"
        ) as copy,
    ):
        for i, c in enumerate(chunks):
            tsv, length = keywords[i]
            mark = marks[i]
            copy.write_row(
                (
                    document_id,
                    doc.tenant_id,
                    c.ordinal,
                    c.text,
                    c.context,
                    list(c.heading_path),
                    c.page,
                    c.token_count,
                    list(doc.acl_groups),
                    chunk_hash(c.embed_text),
                    space.id,
                    vectors[i],
                    c.kind,
                    tsv,
                    length,
                    None if mark is None else list(mark.flags),
                    None if mark is None else mark.score,
                    None if mark is None else mark.screen,
                )
            )
    return document_id


@dataclass(frozen=True, slots=True)
class UnscreenedChunk:
    """A stored chunk whose mark is missing or was made by another screen, as the model is shown it."""

    id: int
    context: str
    text: str


def unscreened_chunks(
    conn: Conn, *, screen: str, tenant_id: str | None, after_id: int, limit: int
) -> list[UnscreenedChunk]:
    """The next ``limit`` chunks (by id, after ``after_id``) not marked by ``screen``, of one tenant or all."""
    return (
        conn.cursor(row_factory=class_row(UnscreenedChunk))
        .execute(
            "SELECT id, context, text FROM chunks WHERE guard_screen IS DISTINCT FROM %(screen)s "
            "AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s) AND id > %(after)s ORDER BY id LIMIT %(limit)s",
            {"screen": screen, "tenant": tenant_id, "after": after_id, "limit": limit},
        )
        .fetchall()
    )


def store_marks(conn: Conn, *, marks: Sequence[tuple[int, ChunkMark]]) -> None:
    """Set the injection marks of stored chunks (a re-scan: text, vectors and keywords are untouched),
    in one statement, and bump their tenants' index version: cached answers were made without them."""
    if not marks:
        return
    ids = [chunk_id for chunk_id, _ in marks]
    # Reason codes are identifiers (no commas): one text per row keeps the update a single unnest.
    conn.execute(
        "UPDATE chunks c SET guard_flags = coalesce(string_to_array(nullif(m.flags, ''), ','), '{}'), "
        "guard_score = m.score, guard_screen = m.screen "
        "FROM unnest(%s::bigint[], %s::text[], %s::real[], %s::text[]) AS m(id, flags, score, screen) "
        "WHERE c.id = m.id",
        (ids, [",".join(m.flags) for _, m in marks], [m.score for _, m in marks], [m.screen for _, m in marks]),
    )
    conn.execute(
        "UPDATE tenants SET index_version = index_version + 1 "
        "WHERE id IN (SELECT DISTINCT tenant_id FROM chunks WHERE id = ANY(%s))",
        (ids,),
    )


def update_document_meta(
    conn: Conn, *, document_id: uuid.UUID, groups: Sequence[str], title: str, metadata: Mapping[str, Any]
) -> None:
    """New access list, title or metadata for unchanged content: no re-parsing, no re-embedding."""
    conn.execute(
        "UPDATE documents SET acl_groups = %s, title = %s, metadata = %s, updated_at = now() WHERE id = %s",
        (list(groups), title, Jsonb(dict(metadata)), document_id),
    )
    conn.execute("UPDATE chunks SET acl_groups = %s WHERE document_id = %s", (list(groups), document_id))


def delete_document(conn: Conn, *, document_id: uuid.UUID) -> bool:
    return conn.execute("DELETE FROM documents WHERE id = %s", (document_id,)).rowcount == 1


@dataclass(frozen=True, slots=True)
class ResultRow:
    source_uri: str
    outcome: str
    detail: str
    chunks: int
    embedded: int
    attempt: int
    final: bool
    job_id: int | None
    created_at: dt.datetime


def record_result(
    conn: Conn,
    *,
    batch_id: uuid.UUID,
    job_id: int | None,
    tenant_id: str,
    result: IngestResult,
    attempt: int = 1,
    final: bool = True,
) -> None:
    conn.execute(
        "INSERT INTO ingest_results (batch_id, job_id, tenant_id, source_uri, document_id, outcome, detail, attempt, "
        "final, chunks, embedded, timings_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            batch_id,
            job_id,
            tenant_id,
            result.source_uri,
            result.document_id,
            result.outcome,
            result.detail,
            attempt,
            final,
            result.chunks,
            result.embedded,
            Jsonb(dict(result.timings_ms)),
        ),
    )


def batch_results(conn: Conn, *, batch_id: uuid.UUID) -> list[ResultRow]:
    """The latest result per file of a batch."""
    return (
        conn.cursor(row_factory=class_row(ResultRow))
        .execute(
            "SELECT DISTINCT ON (source_uri) source_uri, outcome, detail, chunks, embedded, attempt, final, job_id, "
            "created_at FROM ingest_results WHERE batch_id = %s ORDER BY source_uri, id DESC",
            (batch_id,),
        )
        .fetchall()
    )


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    status: str
    attempts: int
    source_uri: str
    scheduled_at: dt.datetime | None
    outcome: str | None
    detail: str | None


def tune_lock(tenant_id: str) -> str:
    """The queueing lock of a tenant's calibration job: one waiting at a time."""
    return f"tune:{tenant_id}"


def tuning_waiting(conn: Conn, tenant_id: str) -> bool:
    """Whether a calibration of the tenant is queued and not yet started."""
    row = conn.execute(
        "SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = %s AND status = 'todo'", (tune_lock(tenant_id),)
    ).fetchone()
    return row is not None


def list_jobs(conn: Conn, *, status: str | None, limit: int) -> list[JobRow]:
    """Ingestion jobs (procrastinate's table) with the latest result each recorded."""
    return (
        conn.cursor(row_factory=class_row(JobRow))
        .execute(
            "SELECT j.id, j.status::text AS status, j.attempts, coalesce(j.args->>'source_uri', '') AS source_uri, "
            "j.scheduled_at, r.outcome, r.detail FROM procrastinate_jobs j "
            "LEFT JOIN LATERAL (SELECT outcome, detail FROM ingest_results WHERE job_id = j.id "
            "ORDER BY id DESC LIMIT 1) r ON true "
            "WHERE j.task_name = %s AND (%s::text IS NULL OR j.status::text = %s) "
            "ORDER BY j.id DESC LIMIT %s",
            (INGEST_TASK, status, status, limit),
        )
        .fetchall()
    )


def read_upload(conn: Conn, *, upload_id: uuid.UUID, tenant_id: str) -> tuple[str, bytes] | None:
    """An uploaded file's MIME type and bytes (the documents API stores them until the job runs)."""
    row = conn.execute(
        "SELECT mime_type, data FROM uploads WHERE id = %s AND tenant_id = %s", (upload_id, tenant_id)
    ).fetchone()
    if row is None:
        return None
    mime, data = row
    assert isinstance(data, bytes)
    return str(mime), data


def drop_uploads(conn: Conn, upload_ids: Sequence[uuid.UUID]) -> None:
    conn.execute("DELETE FROM uploads WHERE id = ANY(%s)", (list(upload_ids),))


def sweep_uploads(conn: Conn, *, older_than_s: int) -> int:
    """Delete uploads no waiting or running job will read (a crash between storing and queueing, a
    job cancelled or deleted in the queue, a failure that could not be recorded); returns how many."""
    return conn.execute(
        "DELETE FROM uploads u WHERE u.created_at < now() - make_interval(secs => %s) AND NOT EXISTS ("
        " SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = %s"
        " AND j.args->>'upload_id' = u.id::text AND j.status IN ('todo', 'doing'))",
        (older_than_s, INGEST_TASK),
    ).rowcount
