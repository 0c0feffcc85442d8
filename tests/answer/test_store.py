"""The provenance record's two directions: what is encoded for the answers table decodes back to the
same domain values (through JSON, as jsonb stores it)."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from answer.store import citation_json, citation_of, verdict_of
from answer.types import Citation, Finding, Source, Verdict

pytestmark = pytest.mark.unit


def _through_json(value: object) -> object:
    return json.loads(json.dumps(value))


def test_a_citation_decodes_to_itself_without_the_passage_text() -> None:
    source = Source(2, 11, (11, 12), uuid.uuid4(), "Travel", "file:///t.md", 3, "the passage", 0.25, date="2025-01-01")
    citation = Citation(2, source, "a quote")
    back = citation_of(_through_json(citation_json(citation)))  # type: ignore[arg-type]
    assert back == dataclasses.replace(citation, source=dataclasses.replace(source, text=""))


def test_a_verdict_decodes_to_itself() -> None:
    verdict = Verdict("incomplete", True, (Finding("stream", "abandoned", "the answer stopped"),))
    assert verdict_of(_through_json(verdict.as_dict())) == verdict  # type: ignore[arg-type]
    assert verdict_of({"outcome": "answer", "flagged": False}) == Verdict("answer", False)
