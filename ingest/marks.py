"""The injection screen's marks on chunks: made when a document is stored, and re-made for stored chunks
whose mark is missing or came from another screen (``sourcebook guard scan``).

A re-scan reads only the chunks' text, never the files: no parsing, chunking or embedding, so after a
classifier is trained or the rules change, every stored chunk is marked again for the cost of the
screen alone, and documents are not re-ingested for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from ingest import store
from ingest.types import Chunk, ChunkScreen, shown_text
from retrieval.types import ChunkMark
from sourcebook.db import Conn

RESCAN_BATCH = 500


def marks_for(screen: ChunkScreen | None, chunks: Sequence[Chunk]) -> list[ChunkMark | None]:
    """Each chunk's mark; None for each when no screen is configured (stored as not scanned yet)."""
    if screen is None:
        return [None] * len(chunks)
    return list(screen.screen([c.embed_text for c in chunks]))


@dataclass(frozen=True, slots=True)
class Rescan:
    """What a re-scan did: chunks marked, of which flagged, and its wall time."""

    screen: str
    scanned: int
    flagged: int
    seconds: float


def rescan(
    pool: ConnectionPool[Conn], screen: ChunkScreen, *, tenant_id: str | None, batch: int = RESCAN_BATCH
) -> Rescan:
    """Mark every stored chunk (of one tenant, or all) that ``screen`` has not marked, batch by batch,
    each batch in its own transaction, so an interrupted re-scan resumes where it stopped."""
    started = time.perf_counter()
    after, scanned, flagged = 0, 0, 0
    while True:
        with pool.connection() as conn:
            rows = store.unscreened_chunks(conn, screen=screen.name, tenant_id=tenant_id, after_id=after, limit=batch)
        if not rows:
            break
        marks = screen.screen([shown_text(r.context, r.text) for r in rows])
        with pool.connection() as conn, conn.transaction():
            store.store_marks(conn, marks=[(r.id, m) for r, m in zip(rows, marks, strict=True)])
        after = rows[-1].id
        scanned += len(rows)
        flagged += sum(m.flagged for m in marks)
    return Rescan(screen.name, scanned, flagged, round(time.perf_counter() - started, 3))
