"""The verdict on a draft answer: what the guards found, whether the text is the abstention, and
the verdict of an answer that never finished."""

from __future__ import annotations

from collections.abc import Sequence

from answer.prompts import ABSTAIN
from answer.types import Checked, Draft, Finding, Guard, Screened, Verdict

ABANDONED = Finding("stream", "abandoned", "the answer stopped before it was complete (client gone or stream failed)")


def abandoned_verdict(screened: Screened, checked: Checked) -> Verdict:
    """The verdict of an answer that never finished: flagged, the abandonment first, then what the
    question's checks and the sentence gate had found of what was made (and any review it needs)."""
    review = tuple(dict.fromkeys(screened.review + checked.review))
    findings = (ABANDONED, *screened.findings, *checked.findings)
    return Verdict("incomplete", True, findings, checked.sentences, review, checked.policy_version)


def is_abstention(text: str) -> bool:
    normalized = " ".join(text.split()).casefold().replace("’", "'")
    return normalized.startswith(ABSTAIN.casefold().rstrip("."))


def judge(draft: Draft, guards: Sequence[Guard]) -> Verdict:
    findings = tuple(finding for guard in guards for finding in guard.check(draft))
    return Verdict(draft.outcome, any(f.flag for f in findings), findings)


def final_verdict(
    draft: Draft, guards: Sequence[Guard], screened: Screened, checked: Checked | None, *, shown_before_stop: str = ""
) -> Verdict:
    """The whole answer's verdict: the question's findings, the sentence gate's, and the guards' on
    the draft. It is flagged when any finding flags it or a person must review it. ``shown_before_stop``:
    what the employee had seen of an answer a later sentence stopped (recorded, as it was shown)."""
    findings = screened.findings + (checked.findings if checked else ()) + judge(draft, guards).findings
    if shown_before_stop:
        seen = f"{len(shown_before_stop)} characters had been shown before the answer was stopped"
        findings += (Finding("stream", "shown_before_stop", seen),)
    review = tuple(dict.fromkeys(screened.review + (checked.review if checked else ())))
    return Verdict(
        draft.outcome,
        any(f.flag for f in findings) or bool(review),
        findings,
        checked.sentences if checked else (),
        review,
        checked.policy_version if checked else screened.policy_version,
    )
