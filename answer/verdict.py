"""The verdict on a draft answer: what the guards found, whether the text is the abstention, and
the verdict of an answer that never finished."""

from __future__ import annotations

from collections.abc import Sequence

from answer.prompts import ABSTAIN
from answer.types import Draft, Finding, Guard, Verdict

ABANDONED = Verdict(
    "incomplete",
    True,
    (Finding("stream", "abandoned", "the answer stopped before it was complete (client gone or stream failed)"),),
)


def is_abstention(text: str) -> bool:
    normalized = " ".join(text.split()).casefold().replace("’", "'")
    return normalized.startswith(ABSTAIN.casefold().rstrip("."))


def judge(draft: Draft, guards: Sequence[Guard]) -> Verdict:
    findings = tuple(finding for guard in guards for finding in guard.check(draft))
    return Verdict(draft.outcome, any(f.flag for f in findings), findings)
