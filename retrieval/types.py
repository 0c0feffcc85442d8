"""Retrieval's Protocols and frozen dataclasses."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Mode = Literal["bm25", "vector", "hybrid"]
MODES: tuple[Mode, ...] = ("bm25", "vector", "hybrid")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: every arm of every query is filtered by this tenant and these groups."""

    tenant_id: str
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Filters:
    """Optional metadata filters, applied inside both arms before any top-k."""

    document_ids: tuple[uuid.UUID, ...] = ()
    source_prefix: str | None = None
    updated_after: dt.datetime | None = None
    updated_before: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Rewrite:
    """What the rewriter made of a question: the text to search with, and what it did."""

    original: str
    text: str
    phrases: tuple[str, ...] = ()
    expansions: tuple[str, ...] = ()
    method: str = "none"


@dataclass(frozen=True, slots=True)
class ChunkMark:
    """What the injection screen found in a chunk when it was stored (``guardrails.screen``).

    ``flags`` are stable reason codes (a rule's code, ``directed_instruction``, ``hidden_text``,
    ``classifier``), empty when nothing was found; ``score`` is the classifier's P(injection) of the
    chunk's most suspicious sentence (None when the screen ran on rules alone); ``screen`` names the
    screen that made the mark (its rules and classifier versions), so a changed screen re-scans.
    """

    flags: tuple[str, ...]
    score: float | None
    screen: str

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One retrieved chunk with each arm's rank and score (None where an arm did not return it)."""

    chunk_id: int
    document_id: uuid.UUID
    ordinal: int
    text: str
    context: str
    title: str
    source_uri: str
    page: int | None
    heading_path: tuple[str, ...]
    kind: str
    content_hash: str
    score: float
    bm25_rank: int | None = None
    bm25_score: float | None = None
    vector_rank: int | None = None
    vector_distance: float | None = None
    rerank_score: float | None = None
    merged_chunk_ids: tuple[int, ...] = field(default_factory=tuple)
    document_date: str | None = None  # the document's own date (metadata effective_date or date)
    mark: ChunkMark | None = None  # None: stored before the injection screen ran on it


class QueryRewriter(Protocol):
    """Turns a question (and, for follow-ups, the chat so far) into what retrieval searches with."""

    name: str

    def rewrite(self, question: str, *, tenant_id: str, history: Sequence[tuple[str, str]] = ()) -> Rewrite: ...


@dataclass(frozen=True, slots=True)
class SampledChunk:
    """A chunk drawn for calibration, with what a question about it can be written from."""

    chunk_id: int
    text: str
    title: str
    heading_path: tuple[str, ...]
    content_hash: str  # of the text embedded: the same on any machine, unlike the id


class QuestionWriter(Protocol):
    """Writes, for each chunk, one question it answers (None where it has none)."""

    name: str

    def write(self, chunks: Sequence[SampledChunk]) -> list[str | None]: ...


@dataclass(frozen=True, slots=True)
class RerankOutcome:
    candidates: tuple[Candidate, ...]
    reranked: int
    complete: bool
    elapsed_ms: float


class Reranker(Protocol):
    """Re-orders fused candidates by relevance to the query."""

    name: str

    def rerank(self, query: str, candidates: Sequence[Candidate]) -> RerankOutcome: ...


def passage_json(rank: int, p: Candidate) -> dict[str, Any]:
    """A ranked passage as `sourcebook search --json` and `POST /v1/retrieve` show it."""
    return {
        "rank": rank,
        "chunk_id": p.chunk_id,
        "chunk_ids": list(p.merged_chunk_ids) or [p.chunk_id],
        "document_id": str(p.document_id),
        "title": p.title,
        "uri": p.source_uri,
        "page": p.page,
        "date": p.document_date,
        "heading_path": list(p.heading_path),
        "text": p.text,
        "score": p.score,
        "bm25_rank": p.bm25_rank,
        "bm25_score": p.bm25_score,
        "vector_rank": p.vector_rank,
        "vector_distance": p.vector_distance,
        "rerank_score": p.rerank_score,
        "guard": mark_json(p.mark),
    }


def mark_json(mark: ChunkMark | None) -> dict[str, Any] | None:
    """A chunk's injection mark as JSON: None when the chunk was never scanned."""
    if mark is None:
        return None
    score = None if mark.score is None else round(mark.score, 4)
    return {"flagged": mark.flagged, "flags": list(mark.flags), "score": score, "screen": mark.screen}


class Embedder(Protocol):
    """Turns texts into unit-length vectors of one model."""

    @property
    def model_name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text, L2-normalised, dtype float32."""
        ...
