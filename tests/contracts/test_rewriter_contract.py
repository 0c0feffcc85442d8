"""The ``QueryRewriter`` contract (retrieval/types.py), run against every implementation: it keeps
the question, always gives text to search with, says how it got it, and is deterministic."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest

from retrieval.rewrite import RulesRewriter
from retrieval.types import QueryRewriter

pytestmark = pytest.mark.unit

GLOSSARY: Mapping[str, Sequence[str]] = {"PTO": ["paid time off", "vacation"]}
QUESTIONS = [
    "How much PTO do I get?",
    "Could you please tell me how to request a laptop?",
    '"exact phrase only"',
    "???",
    "vpn",
]
IMPLEMENTATIONS: dict[str, Callable[[], QueryRewriter]] = {
    "rules": RulesRewriter,
    "rules+glossary": lambda: RulesRewriter(lambda tenant: GLOSSARY if tenant == "acme" else {}),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def rewriter(request: pytest.FixtureRequest) -> QueryRewriter:
    return IMPLEMENTATIONS[request.param]()


def test_it_has_a_name(rewriter: QueryRewriter) -> None:
    assert isinstance(rewriter.name, str)
    assert rewriter.name


@pytest.mark.parametrize("question", QUESTIONS)
def test_it_keeps_the_question_and_gives_text_to_search(rewriter: QueryRewriter, question: str) -> None:
    rewrite = rewriter.rewrite(question, tenant_id="acme")
    assert rewrite.original == question
    assert rewrite.text.strip()
    assert isinstance(rewrite.method, str)
    assert rewrite.method


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_same_question_is_rewritten_the_same_way(rewriter: QueryRewriter, question: str) -> None:
    history = (("user", "What about contractors?"), ("assistant", "They follow the same policy."))
    assert rewriter.rewrite(question, tenant_id="acme", history=history) == rewriter.rewrite(
        question, tenant_id="acme", history=history
    )


def test_tenants_are_rewritten_apart(rewriter: QueryRewriter) -> None:
    other = rewriter.rewrite("How much PTO do I get?", tenant_id="globex")
    assert "paid time off" not in other.text
