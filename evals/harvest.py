"""Golden items harvested from what people said about answers: feedback (a down-vote with a correction
is an item whose reference is the correction; an up-vote makes the stored answer and its cited
passages the reference) and the review queue (an approved answer is the reference; a corrected one
gives the reviewer's answer and supporting passages). The SQL is here, with bound parameters; the
caller owns the transaction."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import psycopg
from psycopg.rows import dict_row

from evals.goldens import GoldenItem
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError

_MARKERS = re.compile(r"\s*\[\d+\](?:\[\d+\])*")


def _reference(text: str) -> str:
    """An answer as a reference: the citation markers dropped (they number one answer's passages)."""
    return " ".join(_MARKERS.sub("", text).split())


def _query(conn: Conn, query: str, params: dict[str, object]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def from_feedback(conn: Conn, *, tenant: str, since: dt.datetime | None) -> list[GoldenItem]:
    """Items from the tenant's feedback since ``since``: down-votes with a correction, and up-votes."""
    rows = _query(
        conn,
        """
        SELECT f.id, f.rating, f.correction, a.question, a.answer, a.cited_chunk_ids
        FROM feedback f JOIN answers a ON a.id = f.answer_id
        WHERE a.tenant_id = %(tenant)s
          AND (%(since)s::timestamptz IS NULL OR f.created_at >= %(since)s)
          AND (f.rating = 1 OR (f.rating = -1 AND coalesce(btrim(f.correction), '') <> ''))
        ORDER BY f.id
        """,
        {"tenant": tenant, "since": since},
    )
    items = []
    for row in rows:
        key, question = f"feedback-{row['id']}", str(row["question"])
        if row["rating"] == 1:
            chunks = tuple(int(n) for n in row["cited_chunk_ids"])
            up = ("feedback", "up-vote")
            items.append(GoldenItem(key, question, _reference(row["answer"]), reference_chunk_ids=chunks, tags=up))
        else:
            items.append(GoldenItem(key, question, str(row["correction"]).strip(), tags=("feedback", "correction")))
    return items


def from_reviews(conn: Conn, *, tenant: str, since: dt.datetime | None) -> list[GoldenItem]:
    """Items from the tenant's decided reviews: approved (the stored answer and its cited passages are the
    reference) and corrected (the reviewer's answer and supporting passages). Pending and rejected ones
    teach nothing yet."""
    try:
        rows = _query(
            conn,
            """
            SELECT r.id, r.status, r.corrected_answer, r.supporting_chunk_ids, a.question, a.answer, a.cited_chunk_ids
            FROM reviews r JOIN answers a ON a.id = r.answer_id
            WHERE r.tenant_id = %(tenant)s AND r.status IN ('approved', 'corrected')
              AND (%(since)s::timestamptz IS NULL OR coalesce(r.decided_at, r.created_at) >= %(since)s)
            ORDER BY r.id
            """,
            {"tenant": tenant, "since": since},
        )
    except psycopg.errors.UndefinedTable as exc:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            "this database has no review queue (the reviews table)",
            hint="upgrade Sourcebook and run `sourcebook db upgrade`",
        ) from exc
    items = []
    for row in rows:
        if row["status"] == "corrected" and row["corrected_answer"]:
            reference, chunks = str(row["corrected_answer"]).strip(), row["supporting_chunk_ids"]
        else:
            reference, chunks = _reference(row["answer"]), row["cited_chunk_ids"]
        ids = tuple(int(n) for n in chunks)
        tags = ("review", str(row["status"]))
        items.append(
            GoldenItem(f"review-{row['id']}", str(row["question"]), reference, reference_chunk_ids=ids, tags=tags)
        )
    return items
