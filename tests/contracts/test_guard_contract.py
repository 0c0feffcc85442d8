"""The ``Guard`` contract (answer/types.py), run against every implementation: findings are signed
with the guard's name and a code, the draft is left as it was, a well-cited answer and an
abstention pass unflagged, and an answer cut short is flagged by the verdict."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import pytest

from answer.types import Citation, Draft, Guard, Outcome, Source
from answer.verdict import judge
from guardrails.citations import CitationGuard

pytestmark = pytest.mark.unit

IMPLEMENTATIONS: dict[str, Callable[[], Guard]] = {"citations": CitationGuard}
SOURCE = Source(1, 7, (7,), uuid.uuid4(), "Travel policy", "file:///travel.md", None, "Trains are booked.", 0.9)


def _draft(outcome: Outcome, *, cited: bool = True, text: str = "Trains are booked [1].") -> Draft:
    citations = (Citation(1, SOURCE, "Trains are booked."),) if cited else ()
    return Draft("How do I travel?", text, (SOURCE,), citations, (), outcome)


DRAFTS = {
    "answer": _draft("answer"),
    "uncited": _draft("answer", cited=False, text="Trains are booked."),
    "abstain": _draft("abstain", cited=False, text="The documents don't say."),
    "extractive": _draft("extractive"),
    "incomplete": _draft("incomplete", cited=False, text="Trains are"),
    "dropped": dataclasses.replace(_draft("answer"), dropped_markers=("[9]",)),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def guard(request: pytest.FixtureRequest) -> Guard:
    return IMPLEMENTATIONS[request.param]()


def test_it_has_a_name(guard: Guard) -> None:
    assert isinstance(guard.name, str)
    assert guard.name


@pytest.mark.parametrize("case", sorted(DRAFTS))
def test_findings_are_signed_and_the_draft_is_left_alone(guard: Guard, case: str) -> None:
    draft = DRAFTS[case]
    before = dataclasses.replace(draft)
    findings = list(guard.check(draft))
    assert draft == before
    for finding in findings:
        assert finding.guard == guard.name
        assert finding.code
        assert finding.code == finding.code.strip().lower()
        assert finding.message
    assert list(guard.check(draft)) == findings


@pytest.mark.parametrize("case", ["answer", "abstain"])
def test_a_well_cited_answer_and_an_abstention_pass_unflagged(guard: Guard, case: str) -> None:
    assert not judge(DRAFTS[case], [guard]).flagged


def test_an_answer_cut_short_is_flagged(guard: Guard) -> None:
    verdict = judge(DRAFTS["incomplete"], [guard])
    assert verdict.outcome == "incomplete"
    assert verdict.flagged
