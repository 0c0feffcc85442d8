"""The review queue repository: answers held for a person, and the person's decision. The caller owns
the transaction.

An answer enters the queue when the verdict says so (flagged by the tenant's policy, support below
its threshold) or when it is down-voted; it has at most one open review, which collects every
reason. A decision approves the answer, corrects it (the corrected text and the retrieved chunks
that support it: with the question, a golden example for the eval suite), or rejects it; it is
stored with the reviewer's key and time, once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from psycopg.rows import dict_row

from answer.store import citation_of, verdict_of
from answer.types import Citation, Verdict
from answer.visibility import READABLE_ANSWER
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError

ReviewStatus = Literal["pending", "approved", "corrected", "rejected"]
DecisionKind = Literal["approve", "correct", "reject"]
REVIEW_STATUSES: tuple[ReviewStatus, ...] = get_args(ReviewStatus)
# The reason of a review that a down-vote opened.
FEEDBACK_DOWN = "feedback:down"
# Reasons of one open review, in the order they came.
REASON_SEPARATOR = "; "
_STATUS_OF: dict[DecisionKind, ReviewStatus] = {"approve": "approved", "correct": "corrected", "reject": "rejected"}


@dataclass(frozen=True, slots=True)
class Decision:
    """What a reviewer decides: ``correct`` needs ``corrected_answer`` and may name the retrieved
    chunks that support it; ``approve`` and ``reject`` carry neither."""

    kind: DecisionKind
    corrected_answer: str | None = None
    supporting_chunk_ids: tuple[int, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Review:
    """A review with what the reviewer needs of its answer: the question as stored (it may be
    redacted or hashed), the answer's text, verdict and citations, and the chunks it retrieved."""

    id: int
    tenant_id: str
    answer_id: uuid.UUID
    reason: str
    status: ReviewStatus
    corrected_answer: str | None
    supporting_chunk_ids: tuple[int, ...]
    reviewer_key_id: str | None
    note: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    question: str
    answer: str
    verdict: Verdict
    citations: tuple[Citation, ...]
    retrieved_chunk_ids: tuple[int, ...]
    answered_at: dt.datetime


def enqueue_review(conn: Conn, *, tenant_id: str, answer_id: uuid.UUID, reason: str) -> int:
    """Hold an answer of ``tenant_id`` for review; returns the review's id. An answer with an open
    review gets ``reason`` added to it (once) instead of a second review. Unknown answer: ``not_found``."""
    reason = reason.strip()
    if not reason:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "a review needs a reason")
    row = conn.execute(
        """
        INSERT INTO reviews (tenant_id, answer_id, reason)
        SELECT a.tenant_id, a.id, %(reason)s FROM answers a WHERE a.id = %(answer)s AND a.tenant_id = %(tenant)s
        ON CONFLICT (answer_id) WHERE status = 'pending' DO UPDATE
        SET reason = CASE WHEN EXCLUDED.reason = ANY (string_to_array(reviews.reason, %(sep)s))
                          THEN reviews.reason ELSE reviews.reason || %(sep)s || EXCLUDED.reason END
        RETURNING id
        """,
        {"reason": reason, "answer": answer_id, "tenant": tenant_id, "sep": REASON_SEPARATOR},
    ).fetchone()
    if row is None:
        raise SourcebookError(ErrorCode.NOT_FOUND, f"no answer {answer_id}")
    review_id = row[0]
    assert isinstance(review_id, int)
    return review_id


# Reviews joined with their answers; ``tenant`` NULL (the operator's CLI) reads every tenant.
_SELECT = f"""
    SELECT r.id, r.tenant_id, r.answer_id, r.reason, r.status, r.corrected_answer, r.supporting_chunk_ids,
           r.reviewer_key_id, r.note, r.created_at, r.decided_at,
           a.question, a.answer, a.verdict_detail, a.citations, a.retrieved, a.created_at AS answered_at
    FROM reviews r JOIN answers a ON a.id = r.answer_id
    WHERE (%(tenant)s::text IS NULL OR r.tenant_id = %(tenant)s) AND {READABLE_ANSWER}
"""


def _review(row: dict[str, Any]) -> Review:
    retrieved = row.pop("retrieved")
    verdict = row.pop("verdict_detail")
    return Review(
        **{
            **row,
            "supporting_chunk_ids": tuple(row["supporting_chunk_ids"]),
            "verdict": verdict_of(verdict),
            "citations": tuple(citation_of(c) for c in row["citations"]),
            "retrieved_chunk_ids": tuple(dict.fromkeys(i for r in retrieved for i in r["chunk_ids"])),
        }
    )


def _scope(tenant_id: str | None, groups: Sequence[str] | None) -> dict[str, Any]:
    return {"tenant": tenant_id, "groups": None if groups is None else list(groups)}


def list_reviews(
    conn: Conn,
    *,
    tenant_id: str | None,
    groups: Sequence[str] | None,
    status: ReviewStatus | None,
    after_id: int,
    limit: int,
) -> list[Review]:
    """Reviews oldest first after ``after_id``, of one tenant (None: all) and ``status`` (None: any).
    Unless ``groups`` is None (admins), only those of answers the groups may read (``answer.visibility``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _SELECT + " AND (%(status)s::text IS NULL OR r.status = %(status)s) AND r.id > %(after)s "
            "ORDER BY r.id LIMIT %(limit)s",
            _scope(tenant_id, groups) | {"status": status, "after": after_id, "limit": limit},
        ).fetchall()
    return [_review(row) for row in rows]


def get_review(
    conn: Conn, review_id: int, *, tenant_id: str | None, groups: Sequence[str] | None, lock: bool = False
) -> Review:
    """One review the caller may see (same rule as ``list_reviews``); any other is ``not_found``.
    ``lock`` holds its row until the transaction ends."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _SELECT + " AND r.id = %(id)s" + (" FOR UPDATE OF r" if lock else ""),
            _scope(tenant_id, groups) | {"id": review_id},
        ).fetchone()
    if row is None:
        raise SourcebookError(ErrorCode.NOT_FOUND, f"no review {review_id}", hint="see `GET /v1/reviews`")
    return _review(row)


def checked(decision: Decision) -> Decision:
    """The decision with its texts stripped and chunk ids deduplicated; ``invalid_request`` when its
    parts don't fit its kind."""
    corrected = (decision.corrected_answer or "").strip() or None
    note = (decision.note or "").strip() or None
    chunks = tuple(dict.fromkeys(decision.supporting_chunk_ids))
    if decision.kind == "correct" and corrected is None:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "a correction needs the corrected answer")
    if decision.kind != "correct" and (decision.corrected_answer is not None or chunks):
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"a decision to {decision.kind} takes no corrected answer nor supporting chunks",
            hint="decide `correct` to replace the answer",
        )
    return Decision(decision.kind, corrected, chunks, note)


def decide_review(
    conn: Conn,
    review_id: int,
    *,
    tenant_id: str | None,
    groups: Sequence[str] | None,
    reviewer_key_id: str | None,
    decision: Decision,
) -> Review:
    """Record a decision on a pending review the caller may see. A decided review is ``conflict``;
    supporting chunks the answer did not retrieve are ``invalid_request``."""
    decision = checked(decision)
    review = get_review(conn, review_id, tenant_id=tenant_id, groups=groups, lock=True)
    if review.status != "pending":
        raise SourcebookError(
            ErrorCode.CONFLICT,
            f"review {review_id} was already decided: {review.status}",
            hint="a decision is final; a new down-vote or flag opens a new review",
        )
    foreign = [i for i in decision.supporting_chunk_ids if i not in review.retrieved_chunk_ids]
    if foreign:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"chunk(s) {', '.join(map(str, foreign))} were not retrieved for this answer",
            hint=f"pick from the answer's retrieved chunks: {', '.join(map(str, review.retrieved_chunk_ids))}",
        )
    status = _STATUS_OF[decision.kind]
    row = conn.execute(
        """
        UPDATE reviews SET status = %s, corrected_answer = %s, supporting_chunk_ids = %s, reviewer_key_id = %s,
                           note = %s, decided_at = now()
        WHERE id = %s RETURNING decided_at
        """,
        (
            status,
            decision.corrected_answer,
            list(decision.supporting_chunk_ids),
            reviewer_key_id,
            decision.note,
            review_id,
        ),
    ).fetchone()
    assert row is not None
    assert isinstance(row[0], dt.datetime)
    return dataclasses.replace(
        review,
        status=status,
        corrected_answer=decision.corrected_answer,
        supporting_chunk_ids=decision.supporting_chunk_ids,
        reviewer_key_id=reviewer_key_id,
        note=decision.note,
        decided_at=row[0],
    )
