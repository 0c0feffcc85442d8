"""Answers to review, made without a model: documents rows with their access groups, and answers
stored as the answer stage stores them (``answer.store.store_answer``), retrieved from those documents."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from answer.store import store_answer
from answer.types import AnswerRecord, Citation, Finding, Retrieved, Source, Verdict
from sourcebook.db import Conn
from sourcebook.keys import ensure_tenant


def add_document(conn: Conn, tenant: str, groups: Sequence[str]) -> uuid.UUID:
    """A document of ``tenant`` readable by ``groups`` (its chunks are not needed: answers quote ids)."""
    ensure_tenant(conn, tenant)
    row = conn.execute(
        "INSERT INTO documents (tenant_id, source_uri, title, mime_type, content_hash, size_bytes, acl_groups) "
        "VALUES (%s, %s, 'Travel policy', 'text/markdown', 'h', 1, %s) RETURNING id",
        (tenant, f"file:///{uuid.uuid4()}.md", list(groups)),
    ).fetchone()
    assert row is not None
    assert isinstance(row[0], uuid.UUID)
    return row[0]


def add_answer(
    conn: Conn, tenant: str, passages: Sequence[tuple[uuid.UUID, tuple[int, ...]]], *, question: str = "How?"
) -> AnswerRecord:
    """A stored, flagged answer of ``tenant`` that retrieved ``passages`` (document, chunk ids) and cites the first."""
    retrieved = tuple(
        Retrieved(n, chunks, document, 0.5, n, None, None) for n, (document, chunks) in enumerate(passages, start=1)
    )
    citations: tuple[Citation, ...] = ()
    if passages:
        document, chunks = passages[0]
        source = Source(1, chunks[0], chunks, document, "Travel policy", "file:///t.md", None, "", 0.5)
        citations = (Citation(1, source, "Trains are booked."),)
    record = AnswerRecord(
        id=uuid.uuid4(),
        tenant_id=tenant,
        api_key_id=None,
        question=question,
        history_hash=None,
        history_turns=0,
        rewrite={"search_text": question, "method": "first-turn"},
        retrieved=retrieved,
        citations=citations,
        text="By train [1].",
        verdict=Verdict("answer", True, (Finding("policy", "denied_topic", "salaries"),)),
        model="scripted",
        endpoint=None,
        prompt_version="answer/v2",
        prompt_tokens=10,
        completion_tokens=4,
        timings_ms={"total": 12.5},
    )
    ensure_tenant(conn, tenant)
    store_answer(conn, record)
    return record
