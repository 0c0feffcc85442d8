"""Passages as the answer stage numbers them, and how each was found (for the provenance)."""

from __future__ import annotations

from collections.abc import Sequence

from answer.types import Retrieved, Source
from retrieval.types import Candidate


def to_sources(passages: Sequence[Candidate]) -> list[Source]:
    return [
        Source(
            number=i,
            chunk_id=p.chunk_id,
            chunk_ids=p.merged_chunk_ids or (p.chunk_id,),
            document_id=p.document_id,
            title=p.title or p.source_uri,
            uri=p.source_uri,
            page=p.page,
            text=p.text,
            score=p.rerank_score if p.rerank_score is not None else p.score,
            date=p.document_date,
            section=" > ".join(h for h in p.heading_path if h != p.title),
            flags=p.mark.flags if p.mark is not None else (),
        )
        for i, p in enumerate(passages, start=1)
    ]


def retrieved(source: Source, candidate: Candidate) -> Retrieved:
    return Retrieved(
        source.number,
        source.chunk_ids,
        source.document_id,
        source.score,
        candidate.bm25_rank,
        candidate.vector_rank,
        candidate.rerank_score,
    )
