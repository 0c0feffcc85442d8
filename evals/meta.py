"""How far a judge can be trusted: its agreement with labelled data (HaluEval-QA: each question has a
right and a hallucinated answer to the same knowledge text), as balanced accuracy and AUROC.

A judge gives each answer a score of being hallucinated (higher: more likely) and a decision. Items
the judge failed to score are left out of both figures and counted beside them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evals.judge import Judge, Judged, JudgeInput


@dataclass(frozen=True, slots=True)
class Verdicts:
    """A judge's scores on labelled answers: label 1 is hallucinated; None where the judge failed."""

    name: str
    labels: tuple[int, ...]
    scores: tuple[float | None, ...]
    flagged: tuple[bool | None, ...]


@dataclass(frozen=True, slots=True)
class Agreement:
    balanced_accuracy: float | None
    auroc: float | None
    items: int
    failures: int


def agreement(verdicts: Verdicts) -> Agreement:
    """Balanced accuracy of the decisions and AUROC of the scores, over the answers the judge scored."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    kept = [
        (label, score, flag)
        for label, score, flag in zip(verdicts.labels, verdicts.scores, verdicts.flagged, strict=True)
        if score is not None and flag is not None
    ]
    failures = len(verdicts.labels) - len(kept)
    if len({label for label, _, _ in kept}) < 2:
        return Agreement(None, None, len(kept), failures)
    labels = [label for label, _, _ in kept]
    accuracy = balanced_accuracy_score(labels, [int(bool(flag)) for _, _, flag in kept])
    auroc = roc_auc_score(labels, [float(score or 0.0) for _, score, _ in kept])
    return Agreement(round(float(accuracy), 4), round(float(auroc), 4), len(kept), failures)


def halueval_answers(rows: Sequence[Mapping[str, str]]) -> list[tuple[JudgeInput, int]]:
    """Both answers of each row, as judge inputs with their label (1: hallucinated)."""
    out = []
    for n, row in enumerate(rows):
        for answer, label in ((row["right_answer"], 0), (row["hallucinated_answer"], 1)):
            item = JudgeInput(f"{n}/{label}", row["question"], answer, (row["knowledge"],))
            out.append((item, label))
    return out


async def faithfulness_verdicts(judge: Judge, rows: Sequence[Mapping[str, str]]) -> tuple[Verdicts, list[Judged]]:
    """ragas Faithfulness on both answers of each row: hallucinated when faithfulness is below 0.5.
    Also returns each judgement (its seconds, its failure)."""
    labels, scores, flagged, judged_all = [], [], [], []
    for item, label in halueval_answers(rows):
        judged = await judge.score(item)
        labels.append(label)
        value = judged[0].value if judged else None
        judged_all += judged
        scores.append(None if value is None else 1.0 - value)
        flagged.append(None if value is None else value < 0.5)
    return Verdicts("ragas faithfulness", tuple(labels), tuple(scores), tuple(flagged)), judged_all
