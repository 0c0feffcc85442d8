"""The answer cache: the same conversation asked by callers with the same tenant and groups, against
the same index version, prompt, model and parameters, gets the stored answer back.

The key is a SHA-256 over all of those. The tenant's ``index_version`` (bumped by a trigger on every
document insert, update or delete) is part of it, so any document change in the tenant makes its
entries unreachable at once; they are deleted the next time an entry of the tenant is stored. Only
final, unflagged answers and abstentions are cached (never an extractive fallback or an incomplete
answer), for ``answer_cache_ttl_s``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from answer.store import StoredAnswer, citation_of, load_answer, retrieved_of, verdict_of
from answer.types import AnswerRecord, Message, Standalone
from retrieval.tuning import index_version
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

# Settings that change what an answer would be; the key covers them so a reconfigured server never
# serves an answer made under the old configuration.
_ANSWER_SETTINGS = (
    "llm_base_url",
    "llm_model",
    "llm_rewrite_base_url",
    "llm_rewrite_model",
    "answer_max_tokens",
    "answer_temperature",
    "answer_max_passages",
    "answer_context_chars",
    "answer_prompt_version",
    "rewrite_prompt_version",
    "embedding_model",
    "reranker_model",
    "tenant_rerankers",
    "retrieval_arm_k",
    "rrf_k",
    "rrf_weight_bm25",
    "rrf_weight_vector",
    "rrf_adaptive",
    "fusion",
    "fusion_alpha",
    "retrieval_top_k",
    "max_chunks_per_document",
)
CACHEABLE = frozenset({"answer", "abstain"})


def cache_key(
    settings: Settings,
    *,
    tenant_id: str,
    groups: Sequence[str],
    question: str,
    history: Sequence[Message],
    version: int,
    prompt_versions: Sequence[str],
    max_tokens: int | None,
    temperature: float | None,
) -> str:
    material = {
        "tenant": tenant_id,
        "groups": sorted(set(groups)),
        "question": question,
        "history": [[m.role, m.content] for m in history],
        "index_version": version,
        "prompts": list(prompt_versions),
        "settings": settings.model_dump(mode="json", include=set(_ANSWER_SETTINGS)),
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Probe:
    """A cache lookup: its key and index version (to store the answer under), and the hit if any."""

    key: str
    version: int
    hit: StoredAnswer | None


def probe(
    conn: Conn,
    settings: Settings,
    *,
    tenant_id: str,
    groups: Sequence[str],
    question: str,
    history: Sequence[Message],
    prompt_versions: Sequence[str],
    max_tokens: int | None,
    temperature: float | None,
) -> Probe:
    version = index_version(conn, tenant_id)
    key = cache_key(
        settings,
        tenant_id=tenant_id,
        groups=groups,
        question=question,
        history=history,
        version=version,
        prompt_versions=prompt_versions,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    answer_id = lookup(conn, key, ttl_s=settings.answer_cache_ttl_s)
    hit = None if answer_id is None else load_answer(conn, str(answer_id), tenant_id=tenant_id)
    return Probe(key, version, hit)


def lookup(conn: Conn, key: str, *, ttl_s: int) -> uuid.UUID | None:
    """The cached answer's id (counting the hit), or None."""
    try:
        row = conn.execute(
            "UPDATE answer_cache SET hits = hits + 1, last_hit_at = now() "
            "WHERE key = %s AND created_at > now() - make_interval(secs => %s) RETURNING answer_id",
            (key, ttl_s),
        ).fetchone()
    except psycopg.Error as exc:
        raise SourcebookError(ErrorCode.DATABASE_ERROR, "could not read the answer cache") from exc
    return uuid.UUID(str(row[0])) if row else None


def remember(conn: Conn, probe: Probe, record: AnswerRecord, *, ttl_s: int) -> None:
    """Cache an answer under its probe's key, and drop the tenant's entries of older index versions or
    past their time."""
    conn.execute(
        "DELETE FROM answer_cache WHERE tenant_id = %s "
        "AND (index_version < %s OR created_at <= now() - make_interval(secs => %s))",
        (record.tenant_id, probe.version, ttl_s),
    )
    conn.execute(
        "INSERT INTO answer_cache (key, tenant_id, answer_id, index_version) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (key) DO UPDATE SET answer_id = EXCLUDED.answer_id, created_at = now(), hits = 0",
        (probe.key, record.tenant_id, record.id, probe.version),
    )


def cacheable(record: AnswerRecord) -> bool:
    return record.verdict.outcome in CACHEABLE and not record.verdict.flagged


def replayed(stored: StoredAnswer, *, api_key_id: str | None, timings_ms: dict[str, float]) -> AnswerRecord:
    """A cached answer as this request's record: the stored text and citations, no tokens spent."""
    citations = tuple(citation_of(c) for c in stored.citations)
    return AnswerRecord(
        id=stored.id,
        tenant_id=stored.tenant_id,
        api_key_id=api_key_id,
        question=stored.question,
        history_hash=stored.history_hash,
        history_turns=stored.history_turns,
        rewrite=stored.rewrite,
        retrieved=tuple(retrieved_of(r) for r in stored.retrieved),
        citations=citations,
        text=stored.answer,
        verdict=verdict_of(stored.verdict),
        model=stored.model,
        endpoint=stored.endpoint,
        prompt_version=stored.prompt_version,
        prompt_tokens=0,
        completion_tokens=0,
        timings_ms=timings_ms,
        cached=True,
    )


def standalone_of(stored: StoredAnswer) -> Standalone:
    return Standalone(stored.rewrite.get("standalone", stored.question), "cached")
