"""Rerankers: none (the fused order stands), or a sentence-transformers ``CrossEncoder``.

No trained cross-encoder ships offline, so the default is ``none`` (said in the logs and by
``sourcebook doctor``). Production sets ``SOURCEBOOK_RERANKER_MODEL`` to e.g.
``cross-encoder/ms-marco-MiniLM-L-6-v2`` or a bge reranker, or trains one per tenant
(``sourcebook reranker train``, ``retrieval.rerank_train``): a tenant's newest trained reranker is used
for its searches when it is switched on (``enabled``: it beat the tenant's tuned fusion on held-out
questions, or was switched on by hand); an older one never is.
On CPU a MiniLM cross-encoder scores about 22 pairs/s (DESIGN.md §5), so the reranker scores the top
``candidates`` in small batches, best first, and stops when its time budget is spent: the scored
prefix is re-ordered, the rest keeps the fused order after it, and the outcome says whether every
candidate was scored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from retrieval.tuning import retire_cached_answers
from retrieval.types import Candidate, RerankOutcome
from sourcebook.db import Conn
from sourcebook.db.connect import scalar
from sourcebook.models import ModelLocation, load_model, resolve_device

log = logging.getLogger(__name__)


def passage_text(text: str, context: str | None) -> str:
    """What a cross-encoder reads of a chunk (the same in training and in search)."""
    return f"{context}\n\n{text}" if context else text


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
            pairs = [(query, passage_text(c.text, c.context)) for c in batch]
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


@dataclass(frozen=True, slots=True)
class TrainedReranker:
    """A tenant's trained reranker as stored: where its model is and how it did."""

    id: int
    tenant_id: str
    created_at: dt.datetime
    model_path: str
    figures: Mapping[str, Any]
    enabled: bool
    reason: str

    @property
    def name(self) -> str:
        """How searches, ``--explain`` and answer provenance name it."""
        return f"{self.tenant_id}#{self.id} (trained {self.created_at:%Y-%m-%d})"


_COLUMNS = "id, tenant_id, created_at, model_path, figures, enabled, reason"


def _trained(row: Any) -> TrainedReranker:
    return TrainedReranker(int(row[0]), str(row[1]), row[2], str(row[3]), row[4], bool(row[5]), str(row[6]))


def latest_trained(conn: Conn, tenant_id: str) -> TrainedReranker | None:
    """The tenant's newest trained reranker: the one its searches use when it is switched on."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM tenant_rerankers WHERE tenant_id = %s ORDER BY created_at DESC, id DESC LIMIT 1",
        (tenant_id,),
    ).fetchone()
    return None if row is None else _trained(row)


def trained_rerankers(conn: Conn) -> list[TrainedReranker]:
    """Every tenant's newest trained reranker (for ``doctor`` and ``/health/ready``)."""
    rows = conn.execute(
        f"SELECT DISTINCT ON (tenant_id) {_COLUMNS} FROM tenant_rerankers ORDER BY tenant_id, created_at DESC, id DESC"
    ).fetchall()
    return [_trained(r) for r in rows]


def store_trained(
    conn: Conn,
    *,
    tenant_id: str,
    tuning_id: int | None,
    model_path: str,
    figures: Mapping[str, Any],
    enabled: bool,
    reason: str,
) -> int:
    """Record a trained reranker (the caller owns the transaction). When it or the newest one before it
    is switched on, what the tenant's searches rerank with changes: its cached answers retire."""
    before = latest_trained(conn, tenant_id)
    reranker_id: int = int(
        scalar(  # type: ignore[call-overload]
            conn,
            "INSERT INTO tenant_rerankers (tenant_id, tuning_id, model_path, figures, enabled, reason) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (tenant_id, tuning_id, model_path, json.dumps(figures), enabled, reason),
        )
    )
    if enabled or (before is not None and before.enabled):
        retire_cached_answers(conn, tenant_id)
    return reranker_id


def set_enabled(conn: Conn, tenant_id: str, *, enabled: bool, reason: str) -> TrainedReranker | None:
    """Switch the tenant's newest trained reranker on or off by hand (the reason says who and why)."""
    current = latest_trained(conn, tenant_id)
    if current is None:
        return None
    conn.execute("UPDATE tenant_rerankers SET enabled = %s, reason = %s WHERE id = %s", (enabled, reason, current.id))
    retire_cached_answers(conn, tenant_id)
    return dataclasses.replace(current, enabled=enabled, reason=reason)
