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
    """Store feedback on an answer of ``tenant_id``; another tenant's answer is ``not_found``, as unknown."""
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

    Unless ``groups`` is None (admins), only answers whose every retrieved passage comes from a
    document that shares one of ``groups`` now: the provenance quotes those passages, so showing
    it is showing the documents. A passage of a deleted document hides its answer."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT f.id, f.answer_id, f.api_key_id, f.rating, f.comment, f.correction, f.created_at,
                   a.question, a.rewritten_query, a.answer, a.verdict, a.cited_chunk_ids, a.retrieved,
                   a.model, a.prompt_version, a.created_at AS answered_at
            FROM feedback f JOIN answers a ON a.id = f.answer_id
            WHERE a.tenant_id = %(tenant)s AND f.id > %(after)s
              AND (%(rating)s::smallint IS NULL OR f.rating = %(rating)s)
              AND (%(since)s::timestamptz IS NULL OR f.created_at >= %(since)s)
              AND (%(groups)s::text[] IS NULL OR NOT EXISTS (
                  SELECT 1 FROM jsonb_array_elements(a.retrieved) r
                  WHERE NOT EXISTS (
                      SELECT 1 FROM documents d
                      WHERE d.tenant_id = a.tenant_id AND d.id = (r->>'document_id')::uuid
                        AND d.acl_groups && %(groups)s::text[])))
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
