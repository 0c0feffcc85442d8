"""The answers repository: an answer's provenance record, encoded to store it and decoded to read it
back (both directions here). The caller owns the transaction (``with pool.connection() as conn``
commits on exit)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from answer.types import AnswerRecord, Citation, Finding, Retrieved, SentenceScore, Source, Verdict
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.usage import UsageEvent


def citation_json(c: Citation) -> dict[str, Any]:
    """A citation as the API and the provenance record show it."""
    s = c.source
    return {
        "number": c.number,
        "chunk_id": s.chunk_id,
        "chunk_ids": list(s.chunk_ids),
        "document_id": str(s.document_id),
        "title": s.title,
        "uri": s.uri,
        "page": s.page,
        "date": s.date,
        "quote": c.quote,
        "score": s.score,
    }


def _retrieved(r: Retrieved) -> dict[str, Any]:
    return {
        "number": r.number,
        "chunk_ids": list(r.chunk_ids),
        "document_id": str(r.document_id),
        "score": r.score,
        "bm25_rank": r.bm25_rank,
        "vector_rank": r.vector_rank,
        "rerank_score": r.rerank_score,
    }


_QUESTION_TEXTS = ("standalone", "search_text")


def question_hash(text: str, *, tenant_id: str, salt: str) -> str:
    """What is stored instead of a question's text: HMAC-SHA256 keyed by ``salt`` (the key pepper,
    never stored with the data), so equal questions of a tenant still group, and a dump can't be
    checked against guesses."""
    digest = hmac.new(salt.encode(), f"question\0{tenant_id}\0{text}".encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest}"


def without_question_text(record: AnswerRecord, *, salt: str) -> AnswerRecord:
    """The record with its question and rewrites replaced by their hashes (tenants that ask for it)."""

    def hashed(text: str) -> str:
        return question_hash(text, tenant_id=record.tenant_id, salt=salt)

    rewrite = {k: hashed(v) if k in _QUESTION_TEXTS and v else v for k, v in record.rewrite.items()}
    return dataclasses.replace(record, question=hashed(record.question), rewrite=rewrite)


def store_answer(conn: Conn, record: AnswerRecord) -> None:
    try:
        _insert(conn, record)
    except psycopg.Error as exc:
        raise SourcebookError(ErrorCode.DATABASE_ERROR, f"could not store answer {record.id}") from exc


def _insert(conn: Conn, record: AnswerRecord) -> None:
    conn.execute(
        """
        INSERT INTO answers (id, tenant_id, api_key_id, question, history_hash, history_turns,
                             rewritten_query, rewrite, retrieved, cited_chunk_ids, citations, answer,
                             verdict, verdict_detail, flagged, model, endpoint, prompt_version,
                             prompt_tokens, completion_tokens, latency_ms)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            record.id,
            record.tenant_id,
            record.api_key_id,
            record.question,
            record.history_hash,
            record.history_turns,
            record.rewrite.get("search_text"),
            Jsonb(record.rewrite),
            Jsonb([_retrieved(r) for r in record.retrieved]),
            sorted({i for c in record.citations for i in c.source.chunk_ids}),
            Jsonb([citation_json(c) for c in record.citations]),
            record.text,
            record.verdict.outcome,
            Jsonb(record.verdict.as_dict()),
            record.verdict.flagged,
            record.model,
            record.endpoint,
            record.prompt_version,
            record.prompt_tokens,
            record.completion_tokens,
            Jsonb(record.timings_ms),
        ),
    )


def citation_of(c: dict[str, Any]) -> Citation:
    """A stored citation (``citation_json``) back as the domain value; the passage text is not stored."""
    source = Source(
        number=c["number"],
        chunk_id=c["chunk_id"],
        chunk_ids=tuple(c["chunk_ids"]),
        document_id=uuid.UUID(c["document_id"]),
        title=c["title"],
        uri=c["uri"],
        page=c["page"],
        text="",
        score=c["score"],
        date=c.get("date"),
    )
    return Citation(c["number"], source, c["quote"])


def retrieved_of(r: dict[str, Any]) -> Retrieved:
    return Retrieved(
        r["number"],
        tuple(r["chunk_ids"]),
        uuid.UUID(r["document_id"]),
        r["score"],
        r["bm25_rank"],
        r["vector_rank"],
        r["rerank_score"],
    )


def verdict_of(v: dict[str, Any]) -> Verdict:
    return Verdict(
        v["outcome"],
        bool(v["flagged"]),
        tuple(Finding(f["guard"], f["code"], f["message"]) for f in v.get("findings", [])),
        tuple(SentenceScore(s["text"], s["score"], s["supported"], s["action"]) for s in v.get("sentences", [])),
        tuple(v.get("review", [])),
        v.get("policy_version"),
    )


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer's provenance as stored (JSON columns as plain values)."""

    id: uuid.UUID
    tenant_id: str
    api_key_id: str | None
    created_at: dt.datetime
    question: str
    history_hash: str | None
    history_turns: int
    rewrite: dict[str, Any]
    retrieved: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    answer: str
    verdict: dict[str, Any]
    model: str
    endpoint: str | None
    prompt_version: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: dict[str, float]


def load_answer(conn: Conn, answer_id: str, *, tenant_id: str | None = None) -> StoredAnswer:
    try:
        key = uuid.UUID(answer_id)
    except ValueError as exc:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"{answer_id!r} is not an answer id (a UUID)") from exc
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """
            SELECT id, tenant_id, api_key_id, created_at, question, history_hash, history_turns, rewrite,
                   retrieved, citations, answer, verdict_detail AS verdict, model, endpoint, prompt_version,
                   prompt_tokens, completion_tokens, latency_ms
            FROM answers WHERE id = %s AND (%s::text IS NULL OR tenant_id = %s)
            """,
            (key, tenant_id, tenant_id),
        ).fetchone()
    if row is None:
        raise SourcebookError(ErrorCode.NOT_FOUND, f"no answer {answer_id}")
    return StoredAnswer(**row)


def usage_event(record: AnswerRecord, *, route: str) -> UsageEvent:
    """What an answer costs, as a usage row (a replayed answer spends no generation time)."""
    return UsageEvent(
        tenant_id=record.tenant_id,
        api_key_id=record.api_key_id,
        route=route,
        latency_ms=record.timings_ms.get("total", 0.0),
        answer_id=record.id,
        model=record.model or None,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        generation_s=0.0 if record.cached else record.timings_ms.get("generate", 0.0) / 1000,
        stage_ms=record.timings_ms,
        cached=record.cached,
    )
