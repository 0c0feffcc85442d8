"""Fusion benchmark: each arm alone, RRF and the convex combination over a grid of alpha, on BEIR sets.

    python bench/fusion.py --dataset data/eval/squad-dev --dataset data/eval/halueval-qa \\
        --dataset data/eval/python-faq --max-queries 2000

A program with a report, not a timed test. Each set is ingested into its evaluation tenant (as
``sourcebook eval retrieval`` does; re-runs reuse it). Each question, rewritten by the rules rewriter as
in production, runs once through the keyword arm and once through the vector arm (100 candidates each,
the settings' k1 and b, not a stored calibration's) by calibration's own ``retrieval.calibrate.arm_lists``;
every configuration then fuses those two lists with ``retrieval.tuning.fuse`` (the pure-Python twins of
the SQL, which the tests hold equal to the statement), so the configurations are compared on identical
inputs. ``bm25`` and ``vector`` are the convex combination at alpha 1 and 0, the arms alone as
calibration scores them. Metrics are at the document level (nDCG@10, Recall@10, MRR@10), as
``sourcebook eval retrieval`` reports them.

Alpha is chosen three ways, so that no figure is only tuned on the questions it is reported on:
``tuned_in_set`` (the best alpha on the set's own questions: an upper bound), ``held_out`` (chosen on
the even-numbered questions, reported on the odd ones) and ``from_other_sets`` (the alpha best on the
mean of the other sets, reported on this one).

``query_adaptive`` asks whether weighting each question by its arms' own score distributions helps on
top of the tenant's alpha: each arm's confidence is how far its best score stands above its next nine
(a z-score), and the question's alpha leans toward the more confident arm,
``alpha·(z_bm25+0.1)^g / (alpha·(z_bm25+0.1)^g + (1−alpha)·(z_vector+0.1)^g)``; alpha and g are chosen
on the even-numbered questions against the best fixed alpha chosen there, both reported on the odd ones.
``ceiling`` asks how far any fusion of the two arms could go on the set, chosen on its own questions (an
upper bound, not a figure to ship): the convex combination with each arm normalised three ways (the
product's theoretical min-max, the empirical min-max of the arm's 100 scores, their z-scores; a chunk an
arm did not return gets that arm's lowest normalised score, or 0 for the product's), α in steps of 0.05,
and RRF with k in 10, 60 and the vector weight in 0.25–4.
Prints one JSON object and writes it to ``bench/results/fusion-<UTC timestamp>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))

from evals.datasets import Dataset, load_beir  # noqa: E402
from evals.metrics import query_metrics  # noqa: E402
from evals.retrieval import GROUP, URI_PREFIX, eval_tenant, ingest_corpus  # noqa: E402
from ingest import store  # noqa: E402
from ingest.jobs import WorkerRuntime  # noqa: E402
from retrieval.calibrate import CalibrationInputs, arm_lists  # noqa: E402
from retrieval.glossary import loader as glossary_loader  # noqa: E402
from retrieval.pipeline import search_params  # noqa: E402
from retrieval.rewrite import RulesRewriter  # noqa: E402
from retrieval.search import convex, rrf  # noqa: E402
from retrieval.tokenize import Tokenizer, TokenizerSpec  # noqa: E402
from retrieval.tuning import ArmList, Arms, Tuning, mean_measure  # noqa: E402
from retrieval.types import Caller  # noqa: E402
from sourcebook.db import Database, open_database  # noqa: E402
from sourcebook.settings import Settings, load_settings  # noqa: E402

ARM_K = 100
METRICS = ("ndcg@10", "recall@10", "mrr@10")
# The exponents of the query-adaptive weighting tried (0: the fixed alpha).
GAMMAS = (0.25, 0.5, 1.0)


@dataclasses.dataclass(frozen=True, slots=True)
class SetArms:
    """One set's questions (in order), their arm lists, and each chunk's document."""

    dataset: Dataset
    query_ids: list[str]
    arms: Arms
    documents: dict[int, str]
    rrf_k: int


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def collect_arms(settings: Settings, db: Database, dataset: Dataset, query_ids: list[str]) -> SetArms:
    """The set ingested into its tenant, then each question's two arms at the settings' k1 and b."""
    tenant = eval_tenant(dataset.name, settings)
    runtime = WorkerRuntime(settings, db)
    ingest_corpus(db, runtime, dataset, tenant, lambda what, n, total: None)
    base = search_params(settings, limit=ARM_K)
    rewriter = RulesRewriter(glossary_loader(db.pool))
    inputs = CalibrationInputs(
        db.pool, db.space, runtime.deps().embedder, Tokenizer(TokenizerSpec.of(settings)), base, rewriter
    )
    questions = inputs.query_texts(tenant, [dataset.queries[q] for q in query_ids])

    def progress(what: str, n: int, total: int) -> None:
        if n % 500 == 0:
            log(f"{dataset.name}: {what} {n}/{total}")

    arms = arm_lists(inputs, Caller(tenant, (GROUP,)), questions, [(base.k1, base.b)], base, progress)
    with db.pool.connection() as conn:
        sources = store.chunk_sources(conn, tenant_id=tenant)
    documents = {cid: uri.removeprefix(URI_PREFIX) for cid, uri in sources.items()}
    return SetArms(dataset, query_ids, arms, documents, base.rrf_k)


def configurations(settings: Settings, alphas: Sequence[float]) -> dict[str, Tuning]:
    default = Tuning.of(search_params(settings))
    rrf, convex = dataclasses.replace(default, fusion="rrf"), dataclasses.replace(default, fusion="convex")
    return {
        "bm25": dataclasses.replace(convex, alpha=1.0),
        "vector": dataclasses.replace(convex, alpha=0.0),
        f"rrf k={settings.rrf_k} w_vector={default.weight_vector:g} (default)": rrf,
        f"rrf k={settings.rrf_k} equal weights": dataclasses.replace(rrf, weight_bm25=1.0, weight_vector=1.0),
        **{f"convex alpha={a:g}": dataclasses.replace(convex, alpha=a) for a in alphas},
    }


def score(arms: SetArms, tuning: Tuning, positions: Sequence[int]) -> dict[str, float]:
    """The mean document-level metrics of the questions at ``positions``, their arms fused by ``tuning``."""

    def measure(metric: str) -> float:
        def one(i: int, order: list[int]) -> float:
            return document_metrics(arms, i, order)[metric]

        return round(mean_measure(tuning, positions, arms.arms, one, rrf_k=arms.rrf_k), 4)

    return {m: measure(m) for m in METRICS}


def document_metrics(arms: SetArms, i: int, order: Sequence[int]) -> dict[str, float]:
    """Question i's metrics for a chunk order, at the document level (each document at its best chunk)."""
    ranked = list(dict.fromkeys(arms.documents[cid] for cid in order))
    return query_metrics(ranked, arms.dataset.qrels[arms.query_ids[i]])


def confidence(scores: Sequence[float]) -> float:
    """How far an arm's best score stands above its next nine, in their standard deviations (≥ 0)."""
    top = list(scores[:10])
    if len(top) < 3:
        return 0.0
    rest = top[1:]
    spread = statistics.pstdev(rest) or 1e-6
    return max((top[0] - statistics.fmean(rest)) / spread, 0.0)


def adaptive_alpha(keyword: ArmList, dense: ArmList, *, alpha: float, gamma: float) -> float:
    """The question's alpha: the tenant's, leaned toward the arm whose best score stands out more."""
    bm25 = alpha * (confidence([score for _, score in keyword]) + 0.1) ** gamma
    vector = (1 - alpha) * (confidence([1 - distance for _, distance in dense]) + 0.1) ** gamma
    return bm25 / (bm25 + vector) if bm25 + vector else alpha


def adaptive_ndcg(arms: SetArms, positions: Sequence[int], *, alpha: float, gamma: float) -> float:
    """Mean nDCG@10 of the questions at ``positions`` with each question's own alpha."""
    lists = arms.arms[next(iter(arms.arms))]
    values = []
    for i in positions:
        keyword, dense = lists[i]
        a = adaptive_alpha(keyword, dense, alpha=alpha, gamma=gamma)
        order = [cid for cid, _ in convex(keyword, dense, alpha=a, limit=ARM_K)]
        values.append(document_metrics(arms, i, order)["ndcg@10"])
    return round(statistics.fmean(values), 4) if values else 0.0


def query_adaptive(arms: SetArms, alphas: Sequence[float]) -> dict[str, Any]:
    """The adaptive weighting against the fixed alpha, each chosen on the even questions, on the odd."""
    every = range(len(arms.query_ids))
    even, odd = every[::2], every[1::2]
    inner = [a for a in alphas if 0 < a < 1]
    grid = {(a, g): adaptive_ndcg(arms, even, alpha=a, gamma=g) for a in inner for g in (0.0, *GAMMAS)}
    fixed = max(inner, key=lambda a: grid[(a, 0.0)])
    a, g = max(grid, key=lambda key: (grid[key], -key[1]))
    return {
        "fixed": {"alpha": fixed, "odd_ndcg@10": adaptive_ndcg(arms, odd, alpha=fixed, gamma=0.0)},
        "adaptive": {"alpha": a, "gamma": g, "odd_ndcg@10": adaptive_ndcg(arms, odd, alpha=a, gamma=g)},
        "best_per_gamma_on_all": {
            f"{gamma:g}": max(adaptive_ndcg(arms, every, alpha=x, gamma=gamma) for x in inner)
            for gamma in (0.0, *GAMMAS)
        },
    }


def _normalised(scores: Sequence[float], how: str) -> list[float]:
    if how == "minmax":
        low, high = min(scores, default=0.0), max(scores, default=0.0)
        return [(x - low) / ((high - low) or 1.0) for x in scores]
    spread = statistics.pstdev(scores) if len(scores) > 1 else 0.0
    middle = statistics.fmean(scores) if scores else 0.0
    return [(x - middle) / (spread or 1.0) for x in scores]


def normalised_fusion(keyword: ArmList, dense: ArmList, *, alpha: float, how: str) -> list[int]:
    """The convex combination with each arm normalised by ``how`` (``minmax`` or ``z``) over its own list;
    a chunk an arm did not return gets that arm's lowest normalised score."""
    bm25 = _normalised([s for _, s in keyword], how)
    vector = _normalised([1.0 - d for _, d in dense], how)
    by_bm25 = {cid: x for (cid, _), x in zip(keyword, bm25, strict=True)}
    by_vector = {cid: x for (cid, _), x in zip(dense, vector, strict=True)}
    low_bm25, low_vector = min(bm25, default=0.0), min(vector, default=0.0)
    fused = {
        cid: alpha * by_bm25.get(cid, low_bm25) + (1 - alpha) * by_vector.get(cid, low_vector)
        for cid in by_bm25.keys() | by_vector.keys()
    }
    return sorted(fused, key=lambda cid: (-fused[cid], cid))


def ceiling(arms: SetArms, better_arm: float) -> dict[str, Any]:
    """The best nDCG@10 each family of fusion reaches on the set's own questions (an upper bound)."""
    lists = arms.arms[next(iter(arms.arms))]
    every = range(len(arms.query_ids))

    def mean(order_of: Callable[[ArmList, ArmList], list[int]]) -> float:
        return statistics.fmean(document_metrics(arms, i, order_of(*lists[i]))["ndcg@10"] for i in every)

    alphas = [round(a / 20, 2) for a in range(21)]
    families: dict[str, dict[str, float]] = {
        "convex, theoretical min-max (the product's)": {
            f"alpha={a:g}": mean(lambda k, v, a=a: [cid for cid, _ in convex(k, v, alpha=a, limit=ARM_K)])
            for a in alphas
        }
    }
    for how in ("minmax", "z"):
        families[f"convex, {how} over each arm's list"] = {
            f"alpha={a:g}": mean(lambda k, v, a=a, how=how: normalised_fusion(k, v, alpha=a, how=how)) for a in alphas
        }
    families["rrf"] = {
        f"k={k} w_vector={w:g}": mean(
            lambda b, v, k=k, w=w: [cid for cid, _ in rrf(b, v, k=k, weight_bm25=1.0, weight_vector=w, limit=ARM_K)]
        )
        for k in (10, 60)
        for w in (0.25, 0.5, 1.0, 2.0, 4.0)
    }
    out = {}
    for family, table in families.items():
        best = max(table, key=lambda key: table[key])
        out[family] = {
            "best": best,
            "ndcg@10": round(table[best], 4),
            "minus_better_arm": round(table[best] - better_arm, 4),
        }
    return out


def best_alpha(table: dict[str, dict[str, float]], alphas: Sequence[float]) -> float:
    return max(alphas, key=lambda a: (table[f"convex alpha={a:g}"]["ndcg@10"], -abs(a - 0.5)))


def main() -> None:
    parser = argparse.ArgumentParser(description="Fusion benchmark on BEIR sets (prints JSON).")
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--max-queries", type=int, default=None, help="a seeded random sample of questions")
    parser.add_argument("--alphas", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    args = parser.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    settings = load_settings()
    settings.apply_library_env()
    settings = settings.model_copy(update={"retrieval_arm_k": ARM_K})
    started = dt.datetime.now(dt.UTC)
    configs = configurations(settings, alphas)
    sets: dict[str, Any] = {}
    halves: dict[str, tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]] = {}
    with open_database(settings) as db:
        for folder in args.dataset:
            dataset = load_beir(folder)
            ids = sorted(dataset.queries)
            if args.max_queries and len(ids) > args.max_queries:
                ids = sorted(random.Random(13).sample(ids, args.max_queries))
            log(f"{dataset.name}: {len(dataset.corpus)} documents, {len(ids)} questions")
            arms = collect_arms(settings, db, dataset, ids)
            every = range(len(ids))
            table = {name: score(arms, tuning, every) for name, tuning in configs.items()}
            even, odd = every[::2], every[1::2]
            halves[dataset.name] = (
                {n: score(arms, t, even) for n, t in configs.items() if n.startswith("convex")},
                {n: score(arms, t, odd) for n, t in configs.items()},
            )
            sets[dataset.name] = {
                "documents": len(dataset.corpus),
                "questions": len(ids),
                "metrics": table,
                "query_adaptive": query_adaptive(arms, alphas),
                "ceiling": ceiling(arms, max(table["bm25"]["ndcg@10"], table["vector"]["ndcg@10"])),
            }
    for name, entry in sets.items():
        table = entry["metrics"]
        arm = max(("bm25", "vector"), key=lambda a: table[a]["ndcg@10"])
        chosen_even, odd_table = halves[name]
        held = best_alpha(chosen_even, alphas)
        others = [n for n in sets if n != name]
        pooled = {
            key: {"ndcg@10": statistics.fmean(sets[o]["metrics"][key]["ndcg@10"] for o in others)}
            for key in (f"convex alpha={a:g}" for a in alphas)
            if others
        }
        entry["better_arm"] = arm
        entry["tuned_in_set"] = {"alpha": (t := best_alpha(table, alphas)), **table[f"convex alpha={t:g}"]}
        entry["held_out"] = {
            "alpha": held,
            "odd_questions": odd_table[f"convex alpha={held:g}"],
            "better_arm_on_odd": odd_table[arm],
        }
        if pooled:
            other = best_alpha(pooled, alphas)
            entry["from_other_sets"] = {"alpha": other, **table[f"convex alpha={other:g}"]}
        default = next(n for n in table if n.endswith("(default)"))
        entry["ndcg@10_minus_better_arm"] = {
            n: round(table[n]["ndcg@10"] - table[arm]["ndcg@10"], 4)
            for n in (default, f"convex alpha={entry['tuned_in_set']['alpha']:g}")
        }
    result = {
        "benchmark": "fusion",
        "started": started.isoformat(timespec="seconds"),
        "arm_k": ARM_K,
        "embedding_model": settings.embedding_model,
        "sets": sets,
    }
    out = BENCH / "results" / f"fusion-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
