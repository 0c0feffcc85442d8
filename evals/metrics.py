"""Retrieval metrics over ranked document ids and graded judgements (BEIR's definitions).

nDCG@k uses the linear gain ``rel / log2(rank + 1)`` and the ideal ordering of the judged documents;
Recall@k is the judged documents found in the top k over all judged documents; MRR@k is the
reciprocal rank of the first judged document in the top k (0 when none).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    dcg = sum(judged.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1))
    ideal = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(sorted(judged.values(), reverse=True)[:k], 1))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, rel in judged.items() if rel > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if judged.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def query_metrics(ranked: Sequence[str], judged: Mapping[str, int]) -> dict[str, float]:
    return {
        "ndcg@10": ndcg_at(ranked, judged, 10),
        "recall@10": recall_at(ranked, judged, 10),
        "recall@100": recall_at(ranked, judged, 100),
        "mrr@10": mrr_at(ranked, judged, 10),
    }


METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def mean_metrics(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    if not per_query:
        return dict.fromkeys(METRICS, 0.0)
    return {m: sum(q[m] for q in per_query) / len(per_query) for m in METRICS}
