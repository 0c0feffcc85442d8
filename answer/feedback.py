"""The feedback repository: a rating (and optional comment and correction) on an answer, tied to the
key that gave it, listed with the answer's provenance for the ML team's eval sets. The caller owns
the transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row

from answer.reviews import FEEDBACK_DOWN, enqueue_review
from answer.visibility import READABLE_ANSWER
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError


@dataclass(frozen=True, slots=True)
class Feedback:
    id: int
    answer_id: uuid.UUID
    api_key_id: str | None
    rating: int
    comment: str | None
    correction: str | None
    created_at: dt.datetime


def add_feedback(
    conn: Conn,
    *,
    tenant_id: str,
    api_key_id: str | None,
    answer_id: uuid.UUID,
    rating: int,
    comment: str | None,
    correction: str | None,
) -> Feedback:
    """Store feedback on an answer of ``tenant_id``; another tenant's answer is ``not_found``, as unknown.
    A down-vote also holds the answer for review (reason ``feedback:down``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """
            INSERT INTO feedback (answer_id, api_key_id, rating, comment, correction)
            SELECT a.id, %s, %s, %s, %s FROM answers a WHERE a.id = %s AND a.tenant_id = %s
            RETURNING id, answer_id, api_key_id, rating, comment, correction, created_at
            """,
            (api_key_id, rating, comment, correction, answer_id, tenant_id),
        ).fetchone()
    if row is None:
        raise SourcebookError(
            ErrorCode.NOT_FOUND, f"no answer {answer_id}", hint="use `sourcebook.answer_id` of a response"
        )
    if rating < 0:
        enqueue_review(conn, tenant_id=tenant_id, answer_id=answer_id, reason=FEEDBACK_DOWN)
    return Feedback(**row)


def list_feedback(
    conn: Conn,
    *,
    tenant_id: str,
    groups: Sequence[str] | None,
    rating: int | None,
    since: dt.datetime | None,
    after_id: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Feedback of one tenant, oldest first after ``after_id``, each with its answer's provenance.

    Unless ``groups`` is None (admins), only answers the groups may read now (``answer.visibility``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""
            SELECT f.id, f.answer_id, f.api_key_id, f.rating, f.comment, f.correction, f.created_at,
                   a.question, a.rewritten_query, a.answer, a.verdict, a.cited_chunk_ids, a.retrieved,
                   a.model, a.prompt_version, a.created_at AS answered_at
            FROM feedback f JOIN answers a ON a.id = f.answer_id
            WHERE a.tenant_id = %(tenant)s AND f.id > %(after)s
              AND (%(rating)s::smallint IS NULL OR f.rating = %(rating)s)
              AND (%(since)s::timestamptz IS NULL OR f.created_at >= %(since)s)
              AND {READABLE_ANSWER}
            ORDER BY f.id
            LIMIT %(limit)s
            """,
            {
                "tenant": tenant_id,
                "groups": None if groups is None else list(groups),
                "after": after_id,
                "rating": rating,
                "since": since,
                "limit": limit,
            },
        ).fetchall()
    return [dict(row) for row in rows]
