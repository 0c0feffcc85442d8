"""Rerankers: none (the fused order stands), or a sentence-transformers ``CrossEncoder``.

No trained cross-encoder ships offline, so the default is ``none`` (said in the logs and by
``sourcebook doctor``). Production sets ``SOURCEBOOK_RERANKER_MODEL`` to e.g.
``cross-encoder/ms-marco-MiniLM-L-6-v2`` or a bge reranker. On CPU a MiniLM cross-encoder scores about
22 pairs/s (DESIGN.md §5), so the reranker scores the top ``candidates`` in small batches, best first,
and stops when its time budget is spent: the scored prefix is re-ordered, the rest keeps the fused
order after it, and the outcome says whether every candidate was scored.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from retrieval.types import Candidate, RerankOutcome
from sourcebook.models import ModelLocation, load_model, resolve_device

log = logging.getLogger(__name__)


class NoReranker:
    """``Reranker`` that keeps the fused order."""

    name = "none"

    def rerank(self, query: str, candidates: Sequence[Candidate]) -> RerankOutcome:
        return RerankOutcome(tuple(candidates), 0, True, 0.0)


class CrossEncoderReranker:
    """``Reranker`` over a sentence-transformers ``CrossEncoder``, within a candidate count and time budget."""

    def __init__(
        self,
        location: ModelLocation,
        *,
        candidates: int = 20,
        budget_ms: float = 1500,
        max_length: int = 256,
        batch_size: int = 8,
        device: str = "auto",
    ) -> None:
        self.name = location.name
        self._location = location
        self._candidates = candidates
        self._budget_ms = budget_ms
        self._max_length = max_length
        self._batch_size = batch_size
        self._device = device
        self._model: Any = None

    def warm_up(self) -> None:
        if self._model is not None:
            return
        from sentence_transformers import CrossEncoder

        self._model = load_model(
            partial(CrossEncoder, max_length=self._max_length, device=resolve_device(self._device)),
            self._location,
            role="reranker",
            hint="check SOURCEBOOK_RERANKER_MODEL (or set it to none) and run `sourcebook doctor`",
        )

    def rerank(self, query: str, candidates: Sequence[Candidate]) -> RerankOutcome:
        self.warm_up()
        started = time.perf_counter()
        head = list(candidates[: self._candidates])
        scores: list[float] = []
        for start in range(0, len(head), self._batch_size):
            if scores and (time.perf_counter() - started) * 1000 >= self._budget_ms:
                break
            batch = head[start : start + self._batch_size]
            pairs = [(query, f"{c.context}\n\n{c.text}" if c.context else c.text) for c in batch]
            scores.extend(float(s) for s in self._model.predict(pairs, show_progress_bar=False))
        scored = sorted(
            (dataclasses.replace(c, rerank_score=s) for c, s in zip(head, scores, strict=False)),
            key=lambda c: -(c.rerank_score or 0.0),
        )
        rest = list(candidates[len(scored) :])
        elapsed = (time.perf_counter() - started) * 1000
        complete = len(scored) == len(head)
        if not complete:
            log.info("rerank budget spent", extra={"scored": len(scored), "of": len(head), "ms": round(elapsed)})
        return RerankOutcome(tuple(scored + rest), len(scored), complete, elapsed)
