"""Detection figures for the guards: held-out injection recall and false positives, and groundedness
on HaluEval-QA (each question's right answer against its hallucinated one), with the stage-1 fit.

Pure functions over the guards and the labelled sets; ``bench/guards.py`` and ``sourcebook guard
train`` print what they return. They live here rather than in ``evals/`` because the layers keep
``evals`` and ``guardrails`` independent of each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.classifier import Example
from guardrails.groundedness import Features, Stage1, Weights
from guardrails.injection import Scorer, check_injection
from guardrails.types import Verdict

GUARD_DATA = Path(__file__).resolve().parent.parent / "data" / "guards"
# The first set was written while the checks were built; the holdout after they were fixed (blind).
QUESTION_SETS = ("security_questions", "security_questions_holdout")


def security_questions(name: str = "security_questions") -> list[str]:
    """A set of benign questions about security and prompt injection (one a line, ``#`` comments)."""
    lines = (GUARD_DATA / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def question_sets() -> dict[str, list[str]]:
    return {name: security_questions(name) for name in QUESTION_SETS}


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return round(sum(values) / len(values), 4) if values else 0.0


def verdict_rates(verdicts: Sequence[Verdict], labels: Sequence[int]) -> dict[str, float]:
    """Recall (attacks not allowed / blocked) and false-positive rates (benign warned / blocked)."""
    attacks = [v for v, y in zip(verdicts, labels, strict=True) if y == 1]
    benign = [v for v, y in zip(verdicts, labels, strict=True) if y == 0]
    return {
        "recall_warn_or_block": _share(v != "allow" for v in attacks),
        "recall_block": _share(v == "block" for v in attacks),
        "fpr_warn_or_block": _share(v != "allow" for v in benign),
        "fpr_block": _share(v == "block" for v in benign),
        "attacks": len(attacks),
        "benign": len(benign),
    }


def injection_figures(
    scorer: Scorer | None, held_out: Sequence[Example], questions: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The input checks on the held-out split (rules alone, and all layers) and on each set of benign
    questions about security (the share warned and blocked, and the blocked ones)."""
    labels = [e.label for e in held_out]
    out: dict[str, Any] = {"rules_only": verdict_rates([check_injection(e.text).verdict for e in held_out], labels)}
    if scorer is not None:
        out["rules_and_classifier"] = verdict_rates([check_injection(e.text, scorer).verdict for e in held_out], labels)
        out["thresholds"] = {"warn_at": round(scorer.warn_at, 4), "block_at": round(scorer.block_at, 4)}
    for name, texts in questions.items():
        about = [check_injection(q, scorer) for q in texts]
        out[name] = {
            "questions": len(texts),
            "warned": _share(v.verdict == "warn" for v in about),
            "blocked": _share(v.verdict == "block" for v in about),
            "blocked_examples": [q for q, v in zip(texts, about, strict=True) if v.verdict == "block"],
        }
    return out


@dataclass(frozen=True, slots=True)
class Judged:
    """One HaluEval answer as stage 1 saw it: hallucinated (1) or right (0), its features and verdict."""

    item: int
    hallucinated: int
    features: Features
    score: float
    flagged: bool


def halueval_judged(stage1: Stage1, items: Sequence[Mapping[str, str]], indices: Iterable[int]) -> list[Judged]:
    """Both answers of each item: the knowledge is the passage, the question may be restated."""
    out = []
    for index in indices:
        item = items[index]
        evidence = stage1.evidence([item["knowledge"]])
        for answer, hallucinated in ((item["right_answer"], 0), (item["hallucinated_answer"], 1)):
            features = stage1.features(answer, evidence, item["question"])
            score = stage1.score(features)
            out.append(Judged(index, hallucinated, features, score, not stage1.supported(features, score)))
    return out


def caught_and_false(judged: Sequence[Judged]) -> dict[str, float]:
    return {
        "hallucinated_caught": _share(j.flagged for j in judged if j.hallucinated),
        "right_flagged": _share(j.flagged for j in judged if not j.hallucinated),
        "answers": len(judged),
    }


def _matrix(judged: Sequence[Judged], similarity: bool) -> np.ndarray:
    rows = [
        [
            j.features.coverage,
            len(j.features.missing_numbers),
            len(j.features.missing_names),
            float(j.features.negation),
        ]
        + ([j.features.similarity or 0.0] if similarity else [])
        for j in judged
    ]
    return np.array(rows, dtype=np.float64)


def fit_weights(judged: Sequence[Judged], *, similarity: bool = False) -> Weights:
    """Logistic regression of 'supported' on stage 1's features (what ``--calibrate`` prints)."""
    from sklearn.linear_model import LogisticRegression

    truth = np.array([1 - j.hallucinated for j in judged])
    model = LogisticRegression(C=10.0, max_iter=1000).fit(_matrix(judged, similarity), truth)
    w = [round(float(x), 3) for x in model.coef_[0]]
    return Weights(round(float(model.intercept_[0]), 3), w[0], w[1], w[2], w[3], w[4] if similarity else 0.0)


def threshold_for(judged: Sequence[Judged], stage1: Stage1, false_flags: float) -> float:
    """The highest score threshold whose flags (score below it, or a missing fact) keep the right
    answers' false-flag rate at most ``false_flags``."""
    right = [j for j in judged if not j.hallucinated]
    hard = sum(not stage1.supported(j.features, 1.0) for j in right)
    budget = int(np.floor(false_flags * len(right))) - hard
    soft = sorted(stage1.score(j.features) for j in right if stage1.supported(j.features, 1.0))
    if budget < 0 or not soft:
        return 0.0
    return float(soft[min(budget, len(soft) - 1)])
