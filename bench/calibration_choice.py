"""Calibration's choice rule, judged on real questions: which way of choosing from the synthetic
questions picks the settings that do best on the questions people ask.

    SOURCEBOOK_DATA_DIR=/tmp/tune-evaldb SOURCEBOOK_LLM_BASE_URL=http://127.0.0.1:9/v1 \\
        python bench/calibration_choice.py --dataset /tmp/tune-eval/python-faq \\
        --dataset /tmp/tune-eval/sub/halueval-qa --dataset data/eval/squad-sample --max-queries 600

A program with a report, not a timed test. Each set must be ingested into its evaluation tenant and
calibrated with model-written questions already (``sourcebook eval retrieval`` then ``sourcebook tune
retrieval``); the stored questions of the tenant's newest calibration are read back (the model is not
asked again), so every rule sees the very questions the stored choice was made on. Each synthetic and
each real question (rewritten by the rules rewriter, as in production) runs once through the vector
arm and once through the keyword arm for every (k1, b) of calibration's grid; every candidate then
fuses those lists with ``retrieval.tuning.fuse``, so all rules are compared on identical inputs.

The rules: the best mean (MRR@10 or nDCG@10 of the source chunk, each question weighted as calibration
weighs it) on the 70% calibration validates its way of choosing on, or on all of them (what it
stores); the same with BM25's k1 and b left at the settings'; and alpha smoothed (each convex
candidate scored by the mean of itself and its neighbours 0.1 away). For each rule: the settings it
chooses and their nDCG@10 on the real questions (document level, as ``sourcebook eval retrieval``
reports it), beside the better arm's and the best candidate's of the grid.
Prints one JSON object and writes it to ``bench/results/calibration-choice-<UTC timestamp>.json``.
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

from evals.datasets import load_beir  # noqa: E402
from evals.metrics import query_metrics  # noqa: E402
from evals.retrieval import GROUP, URI_PREFIX, eval_tenant  # noqa: E402
from ingest import store  # noqa: E402
from ingest.jobs import WorkerRuntime  # noqa: E402
from retrieval import tuning as tunings  # noqa: E402
from retrieval.calibrate import CalibrationInputs, arm_lists, tenant_caller  # noqa: E402
from retrieval.glossary import loader as glossary_loader  # noqa: E402
from retrieval.pipeline import search_params  # noqa: E402
from retrieval.rewrite import RulesRewriter  # noqa: E402
from retrieval.tokenize import Tokenizer, TokenizerSpec  # noqa: E402
from retrieval.types import Caller  # noqa: E402
from sourcebook.db import open_database  # noqa: E402
from sourcebook.settings import load_settings  # noqa: E402

Scores = dict[tunings.Tuning, float]


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def per_question(
    candidates: Sequence[tunings.Tuning],
    arms: tunings.Arms,
    count: int,
    measure: Callable[[int, list[int]], float],
    rrf_k: int,
) -> dict[tunings.Tuning, list[float]]:
    """Each candidate's value on every question (fused once, reused by every rule)."""
    return {t: tunings.question_values(t, range(count), arms, measure, rrf_k=rrf_k) for t in candidates}


def mean(values: Sequence[float], questions: Sequence[int], weights: Sequence[float]) -> float:
    return tunings.weighted_mean([values[i] for i in questions], [weights[i] for i in questions])


def rules(
    mrr: dict[tunings.Tuning, list[float]],
    ndcg: dict[tunings.Tuning, list[float]],
    weights: Sequence[float],
    chose_on: Sequence[int],
    usable: Sequence[int],
    default: tunings.Tuning,
) -> dict[str, tunings.Tuning]:
    """The settings each rule chooses."""

    def best(table: dict[tunings.Tuning, list[float]], questions: Sequence[int], only: Any = None) -> tunings.Tuning:
        pool = [t for t in table if only is None or only(t)]
        return tunings.choose({t: mean(table[t], questions, weights) for t in pool}, default)

    def smoothed(table: dict[tunings.Tuning, list[float]], questions: Sequence[int]) -> tunings.Tuning:
        plain = {t: mean(v, questions, weights) for t, v in table.items()}

        def around(t: tunings.Tuning) -> float:
            if t.fusion != "convex":
                return plain[t]
            near = [
                plain[n]
                for n in plain
                if n.fusion == "convex" and n.k1 == t.k1 and n.b == t.b and abs(n.alpha - t.alpha) < 0.101
            ]
            return statistics.fmean(near)

        return tunings.choose({t: around(t) for t in plain}, default)

    default_kb = lambda t: (t.k1, t.b) == (default.k1, default.b)  # noqa: E731
    return {
        "mrr@10, 70% (until 12-07)": best(mrr, chose_on),
        "ndcg@10, 70%": best(ndcg, chose_on),
        "mrr@10, all usable": best(mrr, usable),
        "ndcg@10, all usable (the product's rule)": best(ndcg, usable),
        "mrr@10, 70%, default k1 b": best(mrr, chose_on, default_kb),
        "ndcg@10, 70%, default k1 b": best(ndcg, chose_on, default_kb),
        "ndcg@10, all usable, default k1 b": best(ndcg, usable, default_kb),
        "ndcg@10, 70%, alpha smoothed": smoothed(ndcg, chose_on),
        "ndcg@10, all usable, alpha smoothed": smoothed(ndcg, usable),
    }


def real_measure(documents: dict[int, str], qrels: list[dict[str, int]]) -> Callable[[int, list[int]], float]:
    """Real question i's nDCG@10 for a chunk order, at the document level (each document at its best chunk)."""

    def measure(i: int, order: list[int]) -> float:
        ranked = list(dict.fromkeys(documents[cid] for cid in order))
        return query_metrics(ranked, qrels[i])["ndcg@10"]

    return measure


def judge(
    synthetic: Sequence[tunings.TunedQuestion],
    arms: tunings.Arms,
    on_real: dict[tunings.Tuning, float],
    candidates: Sequence[tunings.Tuning],
    default: tunings.Tuning,
    rrf_k: int,
) -> dict[str, Any]:
    """Each rule's choice on the synthetic questions, and how it does on the real ones."""
    sources = [q.chunk_id for q in synthetic]
    weights = [q.weight for q in synthetic]
    chose_on = [i for i, q in enumerate(synthetic) if not q.held_out]
    count = len(synthetic)
    mrr = per_question(candidates, arms, count, lambda i, o: tunings.reciprocal_rank(o, sources[i]), rrf_k)
    ndcg = per_question(candidates, arms, count, lambda i, o: tunings.ndcg_at_10(o, sources[i]), rrf_k)
    arm = {
        "bm25": on_real[dataclasses.replace(default, fusion="convex", alpha=1.0)],
        "vector": on_real[dataclasses.replace(default, fusion="convex", alpha=0.0)],
    }
    better = max(arm.values())
    top = max(on_real, key=lambda t: on_real[t])
    chosen = rules(mrr, ndcg, weights, chose_on, list(range(count)), default)
    return {
        "arms_ndcg@10": arm,
        "default_ndcg@10": on_real[default],
        "best_of_grid": {"settings": top.label(), "ndcg@10": on_real[top]},
        "rules": {
            name: {"settings": t.label(), "ndcg@10": on_real[t], "minus_better_arm": round(on_real[t] - better, 4)}
            for name, t in chosen.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Calibration's choice rules judged on real questions (JSON).")
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--max-queries", type=int, default=None, help="a seeded random sample of real questions")
    args = parser.parse_args()
    settings = load_settings()
    settings.apply_library_env()
    started = dt.datetime.now(dt.UTC)
    base = dataclasses.replace(search_params(settings), arm_k=tunings.ARM_K, limit=tunings.ARM_K)
    default = tunings.Tuning.of(search_params(settings))
    candidates = tunings.grid(default)
    settings_grid = sorted({(t.k1, t.b) for t in candidates})
    sets: dict[str, Any] = {}
    with open_database(settings) as db:
        runtime = WorkerRuntime(settings, db)
        rewriter = RulesRewriter(glossary_loader(db.pool))
        inputs = CalibrationInputs(
            db.pool, db.space, runtime.deps().embedder, Tokenizer(TokenizerSpec.of(settings)), base, rewriter
        )
        for folder in args.dataset:
            dataset = load_beir(folder)
            tenant = eval_tenant(dataset.name, settings)
            with db.pool.connection() as conn:
                stored = tunings.latest(conn, tenant)
                if stored is None:
                    raise SystemExit(f"{tenant}: not calibrated (run `sourcebook tune retrieval --tenant {tenant}`)")
                synthetic = tunings.questions_of(conn, stored.id)
                caller = tenant_caller(conn, tenant)
                documents = {
                    cid: uri.removeprefix(URI_PREFIX)
                    for cid, uri in store.chunk_sources(conn, tenant_id=tenant).items()
                }
            if not synthetic:
                raise SystemExit(f"{tenant}: its newest calibration stored no questions (calibrate it again)")
            ids = sorted(dataset.queries)
            if args.max_queries and len(ids) > args.max_queries:
                ids = sorted(random.Random(13).sample(ids, args.max_queries))
            log(f"{dataset.name}: {len(synthetic)} synthetic questions, {len(ids)} real questions")
            quiet = lambda what, n, total: None  # noqa: E731
            searched = inputs.query_texts(tenant, [q.question for q in synthetic])
            s_arms = arm_lists(inputs, caller, searched, settings_grid, base, quiet)
            real = inputs.query_texts(tenant, [dataset.queries[q] for q in ids])
            r_arms = arm_lists(inputs, Caller(tenant, (GROUP,)), real, settings_grid, base, quiet)
            log(f"{dataset.name}: arms collected")
            real_ndcg = real_measure(documents, [dataset.qrels[q] for q in ids])
            on_real = {
                t: round(statistics.fmean(v), 4)
                for t, v in per_question(candidates, r_arms, len(ids), real_ndcg, base.rrf_k).items()
            }
            sets[dataset.name] = {
                "tenant": tenant,
                "synthetic_questions": {
                    "chosen_on": sum(not q.held_out for q in synthetic),
                    "held_out": sum(q.held_out for q in synthetic),
                },
                "real_questions": len(ids),
                "stored_choice": stored.tuning.label(),
                **judge(synthetic, s_arms, on_real, candidates, default, base.rrf_k),
            }
            log(json.dumps(sets[dataset.name]["rules"]))
    names = next(iter(sets.values()))["rules"].keys() if sets else []
    gaps = {name: [s["rules"][name]["minus_better_arm"] for s in sets.values()] for name in names}
    summary = {
        name: {"mean_minus_better_arm": round(statistics.fmean(g), 4), "worst_minus_better_arm": min(g)}
        for name, g in gaps.items()
    }
    result = {
        "benchmark": "calibration-choice",
        "started": started.isoformat(timespec="seconds"),
        "candidates": len(candidates),
        "sets": sets,
        "summary": summary,
    }
    out = BENCH / "results" / f"calibration-choice-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
