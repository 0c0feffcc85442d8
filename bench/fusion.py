"""Fusion benchmark: each arm alone, RRF and the convex combination over a grid of alpha, on BEIR sets.

    python bench/fusion.py --dataset data/eval/squad-dev --dataset data/eval/halueval-qa \\
        --dataset data/eval/python-faq --max-queries 2000

A program with a report, not a timed test. Each set is ingested into its evaluation tenant (as
``sourcebook eval retrieval`` does; re-runs reuse it). Per question, the pipeline runs the keyword arm
and the vector arm once (100 candidates each, the question rewritten by the rules rewriter as in
production); every fusion is then computed from those two lists by the pure-Python twins of the SQL
(``retrieval.search.rrf`` and ``convex``, which the tests hold equal to the statement), so the
configurations are compared on identical inputs. Metrics are at the document level (nDCG@10,
Recall@10, MRR@10), as ``sourcebook eval retrieval`` reports them.

Alpha is chosen three ways, so that no figure is only tuned on the questions it is reported on:
``tuned_in_set`` (the best alpha on the set's own questions: an upper bound), ``held_out`` (chosen on
the even-numbered questions, reported on the odd ones) and ``from_other_sets`` (the alpha best on the
mean of the other sets, reported on this one). Prints one JSON object and writes it to
``bench/results/fusion-<UTC timestamp>.json``.
"""

from __future__ import annotations

import argparse
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
from evals.retrieval import GROUP, URI_PREFIX, _PrecomputedEmbedder, eval_tenant, ingest_corpus  # noqa: E402
from ingest.jobs import WorkerRuntime  # noqa: E402
from retrieval.pipeline import RetrievalPipeline  # noqa: E402
from retrieval.search import convex, rrf  # noqa: E402
from retrieval.tokenize import Tokenizer, TokenizerSpec  # noqa: E402
from retrieval.types import Caller  # noqa: E402
from sourcebook.db import Database, open_database  # noqa: E402
from sourcebook.settings import Settings, load_settings  # noqa: E402

ARM_K = 100
METRICS = ("ndcg@10", "recall@10", "mrr@10")
Arms = tuple[list[tuple[int, float]], list[tuple[int, float]], dict[int, str]]


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def collect_arms(settings: Settings, db: Database, dataset: Dataset, query_ids: Sequence[str]) -> dict[str, Arms]:
    """Per question: the keyword arm's (chunk, score), the vector arm's (chunk, distance), chunk → document."""
    tenant = eval_tenant(dataset.name, settings)
    runtime = WorkerRuntime(settings, db)
    ingest_corpus(db, runtime, dataset, tenant, lambda what, n, total: None)
    deps = runtime.deps()
    cache: dict[str, Any] = {}
    pipeline = RetrievalPipeline(
        settings=settings,
        pool=db.pool,
        space=db.space,
        embedder=_PrecomputedEmbedder(deps.embedder, cache),
        tokenizer=Tokenizer(TokenizerSpec.of(settings)),
    )
    texts = sorted({pipeline.rewriter.rewrite(dataset.queries[q], tenant_id=tenant).text for q in query_ids})
    for start in range(0, len(texts), 512):
        part = texts[start : start + 512]
        cache.update(zip(part, deps.embedder.embed(part), strict=True))
    caller = Caller(tenant, (GROUP,))
    arms: dict[str, Arms] = {}
    for n, qid in enumerate(query_ids, start=1):
        keyword = pipeline.retrieve(dataset.queries[qid], caller=caller, mode="bm25").candidates
        dense = pipeline.retrieve(dataset.queries[qid], caller=caller, mode="vector").candidates
        documents = {c.chunk_id: c.source_uri.removeprefix(URI_PREFIX) for c in (*keyword, *dense)}
        arms[qid] = (
            [(c.chunk_id, float(c.bm25_score or 0.0)) for c in keyword],
            [(c.chunk_id, float(c.vector_distance or 0.0)) for c in dense],
            documents,
        )
        if n % 500 == 0:
            log(f"{dataset.name}: {n}/{len(query_ids)} questions")
    return arms


def _documents(fused: Sequence[tuple[int, float]], documents: dict[int, str]) -> list[str]:
    return list(dict.fromkeys(documents[cid] for cid, _ in fused))


Fuse = Callable[[list[tuple[int, float]], list[tuple[int, float]]], list[tuple[int, float]]]


def configurations(settings: Settings, alphas: Sequence[float]) -> dict[str, Fuse]:
    k, w_b, w_v = settings.rrf_k, settings.rrf_weight_bm25, settings.rrf_weight_vector
    out: dict[str, Fuse] = {
        "bm25": lambda b, v: sorted(b, key=lambda x: (-x[1], x[0])),
        "vector": lambda b, v: [(cid, -d) for cid, d in sorted(v, key=lambda x: (x[1], x[0]))],
        f"rrf k={k} w_vector={w_v} (default)": lambda b, v: rrf(
            b, v, k=k, weight_bm25=w_b, weight_vector=w_v, limit=ARM_K
        ),
        f"rrf k={k} equal weights": lambda b, v: rrf(b, v, k=k, weight_bm25=1.0, weight_vector=1.0, limit=ARM_K),
    }
    for alpha in alphas:
        out[f"convex alpha={alpha:g}"] = lambda b, v, a=alpha: convex(b, v, alpha=a, limit=ARM_K)
    return out


def score(dataset: Dataset, arms: dict[str, Arms], fuse: Fuse, query_ids: Sequence[str]) -> dict[str, float]:
    per_query = []
    for qid in query_ids:
        keyword, dense, documents = arms[qid]
        per_query.append(query_metrics(_documents(fuse(keyword, dense), documents), dataset.qrels[qid]))
    return {m: round(statistics.fmean(q[m] for q in per_query), 4) for m in METRICS}


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
            table = {name: score(dataset, arms, fuse, ids) for name, fuse in configs.items()}
            even, odd = ids[::2], ids[1::2]
            halves[dataset.name] = (
                {n: score(dataset, arms, f, even) for n, f in configs.items() if n.startswith("convex")},
                {n: score(dataset, arms, f, odd) for n, f in configs.items()},
            )
            sets[dataset.name] = {"documents": len(dataset.corpus), "questions": len(ids), "metrics": table}
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
