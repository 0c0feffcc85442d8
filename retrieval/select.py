"""Context selection: from ranked candidates to the passages an answer is built on.

In rank order: drop a chunk that is a near-duplicate of one already kept (same text hash, or a word
Jaccard similarity at or above the threshold: the same paragraph in two versions of a document),
keep at most ``per_document`` chunks of one document, stop at ``top_k``; then merge chunks of one
document that are neighbours (ordinals n and n+1) into one passage, in reading order, removing the
overlap the chunker repeated between them. A merged passage takes the rank of its best chunk, and
the injection marks of all its chunks (``merge_marks``): a flag on any part is a flag on the passage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import regex

from retrieval.types import Candidate, ChunkMark

_WORD = regex.compile(r"[\p{L}\p{N}]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(w.casefold() for w in _WORD.findall(text))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _join(first: str, second: str, *, max_overlap: int = 400) -> str:
    """``first`` then ``second`` without the longest suffix of one that starts the other."""
    limit = min(len(first), len(second), max_overlap)
    for size in range(limit, 15, -1):
        if first.endswith(second[:size]):
            return first + second[size:]
    return f"{first}\n{second}"


def merge_marks(marks: Sequence[ChunkMark | None]) -> ChunkMark | None:
    """The mark of a passage made of chunks with these marks: every flag, the highest score. None
    (not scanned) when no part was scanned, or when a part was not and no scanned part is flagged:
    a clean mark would vouch for text no screen read."""
    scanned = [m for m in marks if m is not None]
    flagged = any(m.flagged for m in scanned)
    if not scanned or (len(scanned) < len(marks) and not flagged):
        return None
    scores = [m.score for m in scanned if m.score is not None]
    return ChunkMark(
        tuple(dict.fromkeys(f for m in scanned for f in m.flags)),
        max(scores) if scores else None,
        " + ".join(dict.fromkeys(m.screen for m in scanned)),
    )


def select_context(
    candidates: Sequence[Candidate], *, top_k: int, per_document: int, near_duplicate: float
) -> list[Candidate]:
    kept: list[Candidate] = []
    kept_words: list[frozenset[str]] = []
    hashes: set[str] = set()
    per_doc: dict[object, int] = {}
    for candidate in candidates:
        if len(kept) >= top_k:
            break
        if candidate.content_hash in hashes or per_doc.get(candidate.document_id, 0) >= per_document:
            continue
        words = _words(candidate.text)
        if any(_jaccard(words, other) >= near_duplicate for other in kept_words):
            continue
        kept.append(candidate)
        kept_words.append(words)
        hashes.add(candidate.content_hash)
        per_doc[candidate.document_id] = per_doc.get(candidate.document_id, 0) + 1
    return _merge_neighbours(kept)


def _merge_neighbours(kept: list[Candidate]) -> list[Candidate]:
    by_position = {(c.document_id, c.ordinal): i for i, c in enumerate(kept)}
    absorbed: set[int] = set()
    merged: dict[int, Candidate] = {}
    for i, candidate in enumerate(kept):
        if i in absorbed:
            continue
        # Walk back to the first chunk of this run of neighbours, then forward through it.
        start = candidate.ordinal
        while (candidate.document_id, start - 1) in by_position:
            start -= 1
        run = []
        ordinal = start
        while (candidate.document_id, ordinal) in by_position:
            run.append(by_position[(candidate.document_id, ordinal)])
            ordinal += 1
        if len(run) == 1:
            merged[i] = candidate
            continue
        best = min(run)  # the best-ranked chunk of the run gives the passage its rank
        text = kept[run[0]].text
        for j in run[1:]:
            text = _join(text, kept[j].text)
        merged[best] = dataclasses.replace(
            kept[best],
            text=text,
            merged_chunk_ids=tuple(kept[j].chunk_id for j in run),
            page=kept[run[0]].page,
            mark=merge_marks([kept[j].mark for j in run]),
        )
        absorbed.update(run)
    return [merged[i] for i in sorted(merged)]
