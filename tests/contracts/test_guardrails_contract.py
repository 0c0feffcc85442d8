"""The ``Guardrails`` and ``SentenceGate`` contract (answer/types.py), run against every implementation:
a screened question keeps the shape the later stages rely on, the gate releases only whole sentences,
whatever the stream's split, never more than it was fed, nothing after it stops the answer, and its
account names the policy it ran under."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from answer.types import Guardrails, Message, Screened, SentenceGate, Source
from guardrails.answering import AnswerGuardrails
from guardrails.groundedness import Stage1
from guardrails.policy import TenantPolicy
from guardrails.sensitive import SensitiveScanner

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

SOURCES = (
    Source(
        1, 7, (7,), uuid.uuid4(), "Travel", "file:///travel.md", None, "Trains are booked for trips under six hours.", 1
    ),
    Source(2, 8, (8,), uuid.uuid4(), "Hotels", "file:///hotels.md", None, "The hotel cap is USD 220 per night.", 1),
)
ANSWER = "Trains are booked for trips under six hours [1]. The hotel cap is USD 220 per night [2]. Thanks."
PROMPT = "You are the company's assistant. Answer from the numbered passages and cite them by number."


def _answer_guardrails() -> Guardrails:
    scanner = SensitiveScanner()
    scanner.warm_up()
    return AnswerGuardrails(policy=lambda tenant: TenantPolicy(tenant=tenant), scanner=scanner, stage1=Stage1())


IMPLEMENTATIONS: dict[str, Callable[[], Guardrails]] = {"answer": _answer_guardrails}
BUILT: dict[str, Guardrails] = {}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def guardrails(request: pytest.FixtureRequest) -> Guardrails:
    if request.param not in BUILT:
        BUILT[request.param] = IMPLEMENTATIONS[request.param]()
    return BUILT[request.param]


def _gate(guardrails: Guardrails, *, hold: bool = False) -> SentenceGate:
    screened = guardrails.screen("contract", "How do I travel?", ())
    if hold:
        screened = Screened(screened.question, screened.history, screened.outcome, hold=True)
    return guardrails.gate("contract", screened, SOURCES, prompt=PROMPT)


def test_a_plain_question_is_allowed_unchanged_with_its_history(guardrails: Guardrails) -> None:
    history = (Message("user", "Hello"), Message("assistant", "Hi."))
    screened = guardrails.screen("contract", "How do I travel?", history)
    assert screened.outcome == "allow"
    assert screened.question == "How do I travel?"
    assert [m.role for m in screened.history] == ["user", "assistant"]
    assert not screened.hold


async def test_the_same_answer_comes_out_whole_whatever_the_split(guardrails: Guardrails) -> None:
    outs = []
    for size in (1, 3, 7, len(ANSWER)):
        gate = _gate(guardrails)
        shown = []
        for start in range(0, len(ANSWER), size):
            released = await gate.feed(ANSWER[start : start + size])
            assert not released.blocked
            shown.append(released.text)
        shown.append((await gate.close()).text)
        outs.append("".join(shown))
    assert len(set(outs)) == 1
    assert outs[0] == ANSWER


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(ANSWER) - 1), max_size=12, unique=True))
def test_text_is_released_only_as_whole_sentences(guardrails: Guardrails, cuts: list[int]) -> None:
    async def run() -> None:
        gate = _gate(guardrails)
        fed = ""
        shown = ""
        for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(ANSWER)], strict=True):
            fed += ANSWER[start:end]
            shown += (await gate.feed(ANSWER[start:end])).text
            assert len(shown.strip()) <= len(fed.strip())
            assert shown == "" or shown.rstrip().endswith((".", "]"))
        shown += (await gate.close()).text
        assert shown == ANSWER

    anyio.run(run)


async def test_a_held_answer_comes_out_only_at_the_close(guardrails: Guardrails) -> None:
    gate = _gate(guardrails, hold=True)
    assert (await gate.feed(ANSWER)).text == ""
    assert (await gate.close()).text == ANSWER


async def test_nothing_comes_out_after_the_answer_is_stopped(guardrails: Guardrails) -> None:
    gate = _gate(guardrails)
    note = gate.system_note
    assert note
    leaked = f"{note} More text follows here. And more."
    first = await gate.feed(leaked)
    closed = await gate.close()
    assert first.text == ""
    assert closed.text == ""
    assert first.blocked or closed.blocked
    assert (await gate.feed("Anything else. At all.")).text == ""


async def test_the_account_names_the_policy_and_every_sentence(guardrails: Guardrails) -> None:
    gate = _gate(guardrails)
    await gate.feed(ANSWER)
    await gate.close()
    checked = gate.checked()
    assert checked.policy_version == 0
    assert len(checked.sentences) == 3
    assert all(s.action == "shown" for s in checked.sentences)
    assert checked.review == ()
