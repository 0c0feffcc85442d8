"""Checks run on a draft answer before it is final. This issue ships the citation guard; the
groundedness and policy guards (guardrails/) plug into the same ``Guard`` Protocol."""

from __future__ import annotations

from collections.abc import Sequence

from serving.types import Draft, Finding, Guard, Verdict


class CitationGuard:
    """An answer must cite at least one passage it was given; invented references are reported."""

    name = "citations"

    def check(self, draft: Draft) -> Sequence[Finding]:
        findings: list[Finding] = []
        if draft.outcome in {"answer", "incomplete"} and not draft.citations:
            findings.append(Finding(self.name, "no_citations", "the answer cites none of the passages it was given"))
        if draft.dropped_markers:
            findings.append(
                Finding(
                    self.name,
                    "dropped_markers",
                    f"removed citation markers that point to no passage: {', '.join(draft.dropped_markers[:10])}",
                    flag=False,
                )
            )
        if draft.outcome == "incomplete":
            findings.append(Finding(self.name, "incomplete", "the model server stopped before the answer was complete"))
        return findings


def judge(draft: Draft, guards: Sequence[Guard]) -> Verdict:
    findings = tuple(finding for guard in guards for finding in guard.check(draft))
    return Verdict(draft.outcome, any(f.flag for f in findings), findings)
