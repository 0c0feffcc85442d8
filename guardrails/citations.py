"""The citation guard: an answer must cite a passage it was given. Other guards (groundedness,
policy) implement the same ``Guard`` Protocol (``answer.types``) and are handed to the answer stage."""

from __future__ import annotations

from collections.abc import Sequence

from answer.types import Draft, Finding


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
