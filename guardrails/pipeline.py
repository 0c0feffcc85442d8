"""The guards composed as plain calls: one for a question, one for a draft answer.

Not wired into the answer stage yet; the answer stage adapts these results to its ``Guard`` seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guardrails.canary import check_canary
from guardrails.groundedness import Stage1
from guardrails.indirect import instruction_findings
from guardrails.injection import Scorer, check_injection
from guardrails.policy import TenantPolicy, decide
from guardrails.sensitive import SensitiveScanner
from guardrails.types import Finding, Groundedness, InputVerdict, Passage, PolicyDecision, Verdict, worst


@dataclass(frozen=True, slots=True)
class QuestionCheck:
    """A question's injection verdict and its sensitive-data decision. ``text`` is what the later
    stages, the logs and the provenance may see: normalised, and redacted as the policy says."""

    injection: InputVerdict
    sensitive: PolicyDecision

    @property
    def verdict(self) -> Verdict:
        return worst(self.injection.verdict, "block" if self.sensitive.action == "block" else "allow")

    @property
    def text(self) -> str:
        return self.sensitive.text


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    """A draft answer's sentence support and every output finding (canary, indirect injection, data)."""

    groundedness: Groundedness
    findings: tuple[Finding, ...]
    sensitive: PolicyDecision

    @property
    def verdict(self) -> Verdict:
        return worst(*(f.verdict for f in self.findings), "block" if self.sensitive.action == "block" else "allow")


def check_question(
    question: str, *, policy: TenantPolicy, scanner: SensitiveScanner, scorer: Scorer | None = None
) -> QuestionCheck:
    injection = check_injection(question, scorer)
    return QuestionCheck(injection, decide(injection.text, scanner.scan(injection.text), policy))


@dataclass(frozen=True, slots=True)
class DraftAnswer:
    answer: str
    passages: Sequence[Passage]
    question: str = ""
    canary: str | None = None


def check_answer(draft: DraftAnswer, *, policy: TenantPolicy, scanner: SensitiveScanner, stage1: Stage1) -> AnswerCheck:
    """Stage-1 groundedness, the canary, instructions followed from passages, and sensitive data."""
    findings = list(instruction_findings(draft.answer, draft.passages))
    if draft.canary:
        leak = check_canary(draft.answer, draft.canary)
        findings += [leak] if leak else []
    report = stage1.check(draft.answer, draft.passages, draft.question)
    findings += [
        Finding("groundedness", "unsupported", "warn", s.sentence, s.start, s.end, s.score) for s in report.unsupported
    ]
    return AnswerCheck(report, tuple(findings), decide(draft.answer, scanner.scan(draft.answer), policy))
