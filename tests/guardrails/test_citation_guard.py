"""The citation guard: an answer must cite a passage it was given; dropped markers are reported."""

from __future__ import annotations

import uuid

import pytest

from answer.citations import CitationStream
from answer.types import Draft, Source
from answer.verdict import judge
from guardrails.citations import CitationGuard

pytestmark = pytest.mark.unit


def source(number: int, text: str = "The office closes at 6 pm.", title: str = "Facilities") -> Source:
    return Source(number, number, (number,), uuid.UUID(int=number), title, f"file:///{number}.md", None, text, 0.5)


def _draft(outcome: str, *, cited: bool, dropped: tuple[str, ...] = ()) -> Draft:
    stream = CitationStream([source(1)])
    stream.feed("It closes at 6 pm [1]." if cited else "It closes at 6 pm.")
    stream.close()
    return Draft("q", stream.text, (source(1),), tuple(stream.citations.values()), dropped, outcome)  # type: ignore[arg-type]


def test_an_answer_without_a_valid_citation_is_flagged() -> None:
    verdict = judge(_draft("answer", cited=False), [CitationGuard()])
    assert verdict.flagged
    assert [f.code for f in verdict.findings] == ["no_citations"]
    assert not judge(_draft("answer", cited=True), [CitationGuard()]).flagged
    assert not judge(_draft("abstain", cited=False), [CitationGuard()]).flagged
    assert not judge(_draft("extractive", cited=True), [CitationGuard()]).flagged


def test_dropped_markers_are_reported_without_flagging_and_incomplete_answers_are_flagged() -> None:
    verdict = judge(_draft("answer", cited=True, dropped=("[7]",)), [CitationGuard()])
    assert not verdict.flagged
    assert verdict.findings[0].code == "dropped_markers"
    incomplete = judge(_draft("incomplete", cited=True), [CitationGuard()])
    assert incomplete.flagged
    assert incomplete.as_dict()["outcome"] == "incomplete"
