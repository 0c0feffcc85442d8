"""The ``Reranker`` contract (retrieval/types.py), run against every implementation: the outcome
holds exactly the candidates it was given, the scored head first and best first."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from retrieval.rerank import CrossEncoderReranker, NoReranker
from retrieval.types import Reranker
from sourcebook.models import resolve_model
from tests.doubles import candidate

CANDIDATES = [
    candidate(1, "Employees book trains for trips under six hours."),
    candidate(2, "The cafeteria opens at eight."),
    candidate(3, "Flights need a manager's approval."),
    candidate(4, "Laptops are requested through the IT portal."),
]


def _cross_encoder() -> Reranker:
    # The MiniLM folder with an untrained head: plumbing only (no trained cross-encoder ships offline).
    return CrossEncoderReranker(resolve_model("all-MiniLM-L6-v2", offline=True), candidates=3, device="cpu")


IMPLEMENTATIONS: dict[str, Callable[[], Reranker]] = {"none": NoReranker, "cross-encoder": _cross_encoder}


@pytest.fixture(
    scope="module",
    params=[pytest.param("none", marks=pytest.mark.unit), pytest.param("cross-encoder", marks=pytest.mark.model)],
)
def reranker(request: pytest.FixtureRequest) -> Reranker:
    made: Reranker = IMPLEMENTATIONS[request.param]()
    return made


def test_it_has_a_name(reranker: Reranker) -> None:
    assert isinstance(reranker.name, str)
    assert reranker.name


def test_the_outcome_holds_exactly_the_candidates_given(reranker: Reranker) -> None:
    outcome = reranker.rerank("how do I travel by train", CANDIDATES)
    assert sorted(c.chunk_id for c in outcome.candidates) == sorted(c.chunk_id for c in CANDIDATES)
    assert {c.text for c in outcome.candidates} == {c.text for c in CANDIDATES}
    assert 0 <= outcome.reranked <= len(CANDIDATES)
    assert outcome.elapsed_ms >= 0


def test_the_scored_head_comes_first_best_first(reranker: Reranker) -> None:
    outcome = reranker.rerank("how do I travel by train", CANDIDATES)
    head = outcome.candidates[: outcome.reranked]
    scores = [c.rerank_score for c in head]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, key=lambda s: -(s or 0.0))
    rest = outcome.candidates[outcome.reranked :]
    scored = {c.chunk_id for c in head}
    assert [c.chunk_id for c in rest] == [c.chunk_id for c in CANDIDATES if c.chunk_id not in scored]


def test_no_candidates_is_an_empty_complete_outcome(reranker: Reranker) -> None:
    outcome = reranker.rerank("anything", [])
    assert outcome.candidates == ()
    assert outcome.reranked == 0
    assert outcome.complete
