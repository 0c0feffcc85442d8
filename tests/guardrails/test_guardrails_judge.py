"""Stage 2: the local model as a Yes/No judge, scored by P(Yes) from the first token's logprobs."""

from __future__ import annotations

import asyncio
import math

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from guardrails.groundedness import Stage1
from guardrails.judge import SYSTEM, Judge, JudgeSettings, judge_sentences, messages, p_yes, prompt
from guardrails.types import Passage
from tests.serving_helpers import free_port

PASSAGES = [Passage(1, "The Oslo office closes at 17:00 on Fridays. Parking is free for staff.")]


@pytest.mark.unit
def test_prompt_has_the_minicheck_shape() -> None:
    assert prompt("  The office closes at 17:00. ", "It closes at five.", "When does it close?") == (
        "Document: The office closes at 17:00.\nQuestion: When does it close?\nClaim: It closes at five.\n"
        "Is the claim supported by the document? Answer Yes or No.\nAnswer:"
    )
    assert "Question:" not in prompt("doc", "claim")
    system, user = messages("doc", "claim")
    assert system == {"role": "system", "content": SYSTEM}
    assert user == {
        "role": "user",
        "content": "Document: doc\nClaim: claim\nIs the claim supported by the document? Answer Yes or No.",
    }


@pytest.mark.unit
def test_p_yes_weighs_yes_against_no_in_the_top_tokens() -> None:
    assert p_yes({"Yes": math.log(0.6), " yes": math.log(0.2), "No": math.log(0.2)}) == pytest.approx(0.8)
    assert p_yes({"No": math.log(0.9), "Maybe": math.log(0.1)}) == 0.0
    assert p_yes({"Sure": -0.1, "The": -3.0}) is None
    assert p_yes({}) is None


@pytest.mark.unit
def test_the_judge_turns_itself_off_when_no_server_answers(spans: InMemorySpanExporter) -> None:
    refused = f"http://127.0.0.1:{free_port()}/v1"  # bound once, now closed: connections are refused
    judge = Judge(JudgeSettings(refused, "none", timeout_s=2))
    report = Stage1().check("Staff get free lunch on Fridays [1].", PASSAGES)

    async def run() -> tuple[float | None, object]:
        score = await judge.score(PASSAGES[0].text, "Staff get free lunch.")
        judged = await judge_sentences(judge, report, PASSAGES)
        await judge.close()
        return score, judged

    score, judged = asyncio.run(run())
    assert score is None
    assert judge.available is False
    assert judged == report
    ours = [
        s
        for s in spans.get_finished_spans()
        if s.name == "guard.judge" and (s.attributes or {}).get("endpoint") == refused
    ]
    (span,) = ours  # one call, then off
    assert span.attributes is not None
    assert span.attributes["judge.off"] == "APIConnectionError"


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.parametrize("api", ["completions", "chat"])
def test_a_real_model_server_judges_the_sentences_stage_1_cannot_decide(small_llm: object, api: str) -> None:
    judge = Judge(JudgeSettings(small_llm.url, small_llm.model, api=api))  # type: ignore[attr-defined, arg-type]
    report = Stage1().check(
        "Parking is free for staff [1]. Staff get free lunch on Fridays [1]. It closes at 18:00 [1]. "
        "Employees eat cheaply in the canteen [1].",
        PASSAGES,
    )

    async def run() -> object:
        # A fully covered sentence scores 0.778 with the fitted weights: above 0.7, stage 1 is sure.
        judged = await judge_sentences(judge, report, PASSAGES, skip_above=0.7)
        await judge.close()
        return judged

    judged = asyncio.run(run())
    parking, lunch, closing, dining = judged.sentences  # type: ignore[attr-defined]
    assert parking.judge is None  # stage 1 was sure
    assert lunch.judge is not None
    assert 0.0 <= lunch.judge <= 1.0
    assert lunch.score == lunch.judge
    assert closing.judge is None
    assert not closing.supported
    # Nothing it says is in the passage (stage 1 cannot vouch for it): the judge decides.
    assert dining.undrawn
    assert dining.judge is not None
    assert dining.supported == (dining.judge >= 0.5)
