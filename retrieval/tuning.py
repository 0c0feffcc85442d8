"""A tenant's retrieval settings chosen on its own documents: the fusion (RRF weights or the convex
combination's alpha) and BM25's k1 and b, stored with their validation figures.

The pure part: the grid of candidates, how one candidate fuses two arm lists (the SQL's Python twins),
the MRR@10 and nDCG@10 of finding a question's source chunk, and the choice. The repository part: the newest
stored tuning of a tenant, and storing one (which bumps the tenant's ``index_version``, so cached
answers found with the old settings are not served again).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from retrieval.search import Fusion, SearchParams, convex, rrf
from sourcebook.db import Conn
from sourcebook.db.connect import scalar

# Keyword arm settings tried (Okapi's usual ranges: k1 in [1.2, 2.0], b near 0.75, plus the ends).
K1_GRID = (0.9, 1.2, 1.5, 2.0)
B_GRID = (0.4, 0.75, 0.9)
RRF_VECTOR_WEIGHTS = (0.25, 0.5, 1.0, 2.0)
# 0 and 1 are the arms alone: the choice can always fall back on the better arm.
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
ARM_K = 100
ArmList = Sequence[tuple[int, float]]
# Per BM25 (k1, b): each question's keyword arm beside its vector arm.
Arms = Mapping[tuple[float, float], Sequence[tuple[ArmList, ArmList]]]


@dataclass(frozen=True, slots=True)
class Tuning:
    """The settings of one tenant's search that calibration chooses."""

    fusion: Fusion
    alpha: float
    weight_bm25: float
    weight_vector: float
    k1: float
    b: float

    @classmethod
    def of(cls, params: SearchParams) -> Tuning:
        return cls(params.fusion, params.alpha, params.weight_bm25, params.weight_vector, params.k1, params.b)

    def apply(self, params: SearchParams) -> SearchParams:
        return dataclasses.replace(params, **dataclasses.asdict(self))

    def label(self) -> str:
        fused = (
            f"convex alpha={self.alpha:g}"
            if self.fusion == "convex"
            else f"rrf w_bm25={self.weight_bm25:g} w_vector={self.weight_vector:g}"
        )
        return f"{fused}, k1={self.k1:g} b={self.b:g}"


@dataclass(frozen=True, slots=True)
class TunedQuestion:
    """A synthetic question of a calibration: the chunk it was written from, whether it was held out of
    the choice, and its weight (``retrieval.questions.question_weight``)."""

    chunk_id: int
    question: str
    held_out: bool
    weight: float


@dataclass(frozen=True, slots=True)
class StoredTuning:
    id: int
    tuning: Tuning
    created_at: dt.datetime
    figures: Mapping[str, Any]
    question_source: str
    questions: int
    chunks: int  # the tenant's chunks when it was calibrated


def grid(default: Tuning) -> list[Tuning]:
    """Every candidate: the convex alphas and the RRF vector weights, each with every k1 × b."""
    fusions = [("convex", a, default.weight_bm25, default.weight_vector) for a in ALPHAS] + [
        ("rrf", default.alpha, default.weight_bm25, w) for w in RRF_VECTOR_WEIGHTS
    ]
    out = [default]
    for k1 in K1_GRID:
        for b in B_GRID:
            out.extend(Tuning(f, a, wb, wv, k1, b) for f, a, wb, wv in fusions)  # type: ignore[arg-type]
    return list(dict.fromkeys(out))


def fuse(tuning: Tuning, keyword: ArmList, dense: ArmList, *, rrf_k: int) -> list[int]:
    """The chunk order ``tuning`` gives two arm lists, as the SQL statement computes it."""
    if tuning.fusion == "convex":
        fused = convex(keyword, dense, alpha=tuning.alpha, limit=ARM_K)
    else:
        fused = rrf(
            keyword, dense, k=rrf_k, weight_bm25=tuning.weight_bm25, weight_vector=tuning.weight_vector, limit=ARM_K
        )
    return [cid for cid, _ in fused]


def reciprocal_rank(order: Sequence[int], wanted: int, *, k: int = 10) -> float:
    for rank, cid in enumerate(order[:k], start=1):
        if cid == wanted:
            return 1.0 / rank
    return 0.0


def question_values(
    tuning: Tuning, questions: Sequence[int], arms: Arms, measure: Callable[[int, list[int]], float], *, rrf_k: int
) -> list[float]:
    """``measure(i, chunk order)`` of each question i of ``questions``, its arm lists (``arms[(k1, b)][i]``)
    fused by ``tuning``."""
    lists = arms[(tuning.k1, tuning.b)]
    return [measure(i, fuse(tuning, *lists[i], rrf_k=rrf_k)) for i in questions]


def weighted_mean(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """The mean of ``values``, weighted by ``weights`` (the same length) when given; 0 for none."""
    if not values:
        return 0.0
    if weights is None:
        return statistics.fmean(values)
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total if total else 0.0


def mean_measure(
    tuning: Tuning,
    questions: Sequence[int],
    arms: Arms,
    measure: Callable[[int, list[int]], float],
    *,
    rrf_k: int,
    weights: Sequence[float] | None = None,
) -> float:
    """The mean over ``questions`` of ``measure(i, chunk order)`` (``question_values``); weighted by
    ``weights[i]`` when given."""
    values = question_values(tuning, questions, arms, measure, rrf_k=rrf_k)
    return weighted_mean(values, [weights[i] for i in questions] if weights is not None else None)


def ndcg_at_10(order: Sequence[int], wanted: int) -> float:
    """nDCG@10 of one relevant chunk: 1 / log2(rank + 1) when it is in the top 10."""
    for rank, cid in enumerate(order[:10], start=1):
        if cid == wanted:
            return 1.0 / math.log2(rank + 1)
    return 0.0


def _changes(t: Tuning, default: Tuning) -> int:
    return sum(getattr(t, f.name) != getattr(default, f.name) for f in dataclasses.fields(Tuning))


def choose(scores: Mapping[Tuning, float], default: Tuning) -> Tuning:
    """The best score; ties go to the default, then to the fewest changes from it, then the order given."""
    return max(scores, key=lambda t: (round(scores[t], 6), t == default, -_changes(t, default)))


def latest(conn: Conn, tenant_id: str) -> StoredTuning | None:
    row = conn.execute(
        "SELECT id, choice, created_at, figures, question_source, questions, chunks FROM retrieval_tunings "
        "WHERE tenant_id = %s ORDER BY created_at DESC, id DESC LIMIT 1",
        (tenant_id,),
    ).fetchone()
    if row is None:
        return None
    choice: dict[str, Any] = row[1]  # type: ignore[assignment]
    return StoredTuning(int(row[0]), Tuning(**choice), row[2], row[3], str(row[4]), int(row[5]), int(row[6]))  # type: ignore[arg-type, call-overload]


def questions_of(conn: Conn, tuning_id: int) -> list[TunedQuestion]:
    """A stored calibration's questions whose chunks still exist, in chunk order."""
    rows = conn.execute(
        "SELECT chunk_id, question, held_out, weight FROM tuning_questions WHERE tuning_id = %s ORDER BY chunk_id",
        (tuning_id,),
    ).fetchall()
    return [TunedQuestion(int(r[0]), str(r[1]), bool(r[2]), float(r[3])) for r in rows]  # type: ignore[call-overload, arg-type]


def store(
    conn: Conn,
    *,
    tenant_id: str,
    tuning: Tuning,
    figures: Mapping[str, Any],
    question_source: str,
    questions: int,
    chunks: int,
    kept: Sequence[TunedQuestion] = (),
) -> int:
    """Record a calibration with the questions it used (the caller owns the transaction) and retire the
    tenant's cached answers; returns its id."""
    tuning_id: int = int(
        scalar(  # type: ignore[call-overload]
            conn,
            "INSERT INTO retrieval_tunings (tenant_id, choice, figures, question_source, questions, chunks) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (
                tenant_id,
                json.dumps(dataclasses.asdict(tuning)),
                json.dumps(figures),
                question_source,
                questions,
                chunks,
            ),
        )
    )
    if kept:
        with conn.cursor() as cur:
            # A chunk deleted since it was sampled (a re-ingest meanwhile) is skipped, not an error.
            cur.executemany(
                "INSERT INTO tuning_questions (tuning_id, chunk_id, question, held_out, weight) "
                "SELECT %s, id, %s, %s, %s FROM chunks WHERE id = %s",
                [(tuning_id, q.question, q.held_out, q.weight, q.chunk_id) for q in kept],
            )
    retire_cached_answers(conn, tenant_id)
    return tuning_id


def index_version(conn: Conn, tenant_id: str) -> int:
    """The tenant's ``index_version``: bumped by every change to its documents, its calibration or its
    trained reranker (0 for a tenant not created yet)."""
    row = conn.execute("SELECT index_version FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    return int(str(row[0])) if row else 0


def retire_cached_answers(conn: Conn, tenant_id: str) -> None:
    """Bump the tenant's ``index_version``: answers cached before a change of how it searches are not
    served again."""
    conn.execute("UPDATE tenants SET index_version = index_version + 1 WHERE id = %s", (tenant_id,))
