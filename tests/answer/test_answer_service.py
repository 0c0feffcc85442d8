"""AnswerService with a scripted model and fixed passages, on the real PostgreSQL: its branches
(answer, abstention without passages, follow-up rewriting, extractive, incomplete, abandoned,
replayed from the cache), each down to what it stores."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest
from psycopg_pool import ConnectionPool

from answer.extractive import EXTRACTIVE_NOTE
from answer.prompts import ABSTAIN
from answer.store import load_answer
from answer.types import AnswerRecord, Event, Message, Piece, Started
from sourcebook.db import Conn
from tests.answer.conftest import ANSWER, Build, Harness, final_record
from tests.doubles import Script, candidate

pytestmark = [pytest.mark.db, pytest.mark.anyio]


def _usage(pool: ConnectionPool[Conn], tenant: str) -> list[tuple[object, ...]]:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT route, cached, prompt_tokens, completion_tokens FROM usage WHERE tenant_id = %s ORDER BY id",
            (tenant,),
        ).fetchall()


def _stored_outcome(pool: ConnectionPool[Conn], record: AnswerRecord) -> tuple[str, list[str]]:
    with pool.connection() as conn:
        stored = load_answer(conn, str(record.id))
    return stored.verdict["outcome"], [f["code"] for f in stored.verdict["findings"]]


async def test_an_answer_streams_its_citations_and_is_stored_with_its_usage(
    harness: Build, pool: ConnectionPool[Conn]
) -> None:
    h = harness({"answer": ANSWER})
    events = await h.ask(Message("user", "How do I travel?"))
    record = final_record(events)
    pieces = [e for e in events if isinstance(e, Piece)]
    assert "".join(p.text for p in pieces) == record.text == "Trips under six hours go by train [1]."
    assert [c.number for p in pieces for c in p.citations] == [1]
    assert record.verdict.outcome == "answer"
    assert not record.verdict.flagged
    assert record.model == "scripted-model"
    assert (record.prompt_tokens, record.completion_tokens) == (120, len(ANSWER.pieces))
    assert record.rewrite["method"] == "first-turn"
    assert [r.chunk_ids for r in record.retrieved] == [(101,), (102,)]
    assert _stored_outcome(pool, record) == ("answer", [])
    assert _usage(pool, h.tenant) == [("chat.completions", False, 120, len(ANSWER.pieces))]
    assert h.recorded == [record]
    [(task, messages, params)] = h.model.calls
    assert task == "answer"
    assert "Employees book trains" in messages[-1].content
    assert params.first_token_s == 30.0


async def test_without_passages_it_abstains_without_asking_the_model(harness: Build) -> None:
    h = harness({"answer": ANSWER}, passages=[])
    record = final_record(await h.ask(Message("user", "What is the moon made of?")))
    assert record.text == ABSTAIN
    assert record.verdict.outcome == "abstain"
    assert not record.verdict.flagged
    assert record.model == "none (no passages)"
    assert h.model.calls == []


async def test_a_follow_up_is_searched_as_the_rewrite_models_standalone_question(harness: Build) -> None:
    rewrite = Script(pieces=("How do contractors travel?", "\nignored"))
    h = harness({"answer": ANSWER, "rewrite": rewrite})
    events = await h.ask(
        Message("user", "How do I travel?"), Message("assistant", "By train [1]."), Message("user", "And contractors?")
    )
    started = events[0]
    assert isinstance(started, Started)
    assert (started.standalone.text, started.standalone.method) == ("How do contractors travel?", "llm")
    assert h.retriever.asked[0][0] == "How do contractors travel?"
    record = final_record(events)
    assert record.history_turns == 2
    assert record.history_hash
    assert [task for task, _, _ in h.model.calls] == ["rewrite", "answer"]


async def test_no_model_endpoint_makes_an_extractive_answer_from_the_top_passages(
    harness: Build, pool: ConnectionPool[Conn]
) -> None:
    h = harness({})
    record = final_record(await h.ask(Message("user", "How do I travel?")))
    assert record.text.startswith(EXTRACTIVE_NOTE)
    assert "Employees book trains" in record.text
    assert record.verdict.outcome == "extractive"
    assert record.model == "extractive"
    assert [c.number for c in record.citations] == [1, 2]
    assert _stored_outcome(pool, record)[0] == "extractive"


async def test_a_model_that_stops_mid_answer_leaves_an_incomplete_flagged_answer(
    harness: Build, pool: ConnectionPool[Conn]
) -> None:
    h = harness({"answer": Script(pieces=ANSWER.pieces, stop_after=3)})
    record = final_record(await h.ask(Message("user", "How do I travel?")))
    assert record.text == "Trips under six"
    assert record.verdict.outcome == "incomplete"
    assert record.verdict.flagged
    outcome, codes = _stored_outcome(pool, record)
    assert outcome == "incomplete"
    assert "incomplete" in codes


async def test_a_client_that_leaves_mid_answer_still_gets_its_answer_stored_as_abandoned(
    harness: Build, pool: ConnectionPool[Conn]
) -> None:
    h = harness({"answer": ANSWER})
    events: AsyncGenerator[Event, None] = h.service.run(h.request(Message("user", "How do I travel?")))
    async with aclosing(events) as stream:
        started = await anext(stream)
        first = await anext(stream)
    assert isinstance(started, Started)
    assert isinstance(first, Piece)
    [record] = h.recorded
    assert record.id == started.answer_id
    assert record.verdict.outcome == "incomplete"
    assert _stored_outcome(pool, record) == ("incomplete", ["abandoned"])
    assert len(_usage(pool, h.tenant)) == 1


async def test_the_same_question_again_is_replayed_from_the_cache_without_the_model(
    harness: Build, pool: ConnectionPool[Conn]
) -> None:
    h = harness({"answer": ANSWER})
    question = Message("user", "How do I travel?")
    first = final_record(await h.ask(question))
    events = await h.ask(question)
    again = final_record(events)
    assert again.cached
    assert again.id == first.id
    assert again.text == first.text
    assert [c.number for c in again.citations] == [1]
    assert (again.prompt_tokens, again.completion_tokens) == (0, 0)
    assert isinstance(events[0], Started)
    assert events[0].standalone.method == "cached"
    assert len(h.model.calls) == 1
    assert [row[1] for row in _usage(pool, h.tenant)] == [False, True]


async def test_an_incomplete_answer_is_not_cached(harness: Build) -> None:
    h = harness({"answer": Script(pieces=ANSWER.pieces, stop_after=3)})
    question = Message("user", "How do I travel?")
    await h.ask(question)
    again = final_record(await h.ask(question))
    assert not again.cached
    assert len(h.model.calls) == 2


CHOSEN = Script(pieces=(" 2",), prompt_tokens=150)
LAPTOP = Script(pieces=("Laptops", " come", " from", " the", " IT", " portal", " [2", "]."), prompt_tokens=170)


async def test_a_two_step_prompt_asks_which_passage_answers_then_answers_from_it_in_one_conversation(
    harness: Build, pool: ConnectionPool[Conn]
) -> None:
    h = harness({"answer": [CHOSEN, LAPTOP]}, prompt="v5")
    record = final_record(await h.ask(Message("user", "How do I get a laptop?")))
    assert record.text == "Laptops come from the IT portal [2]."
    assert [c.number for c in record.citations] == [2]
    assert record.verdict.outcome == "answer"
    assert record.prompt_version.startswith("answer/v5#")
    # Both steps are counted: what the model read and wrote for the choice, then for the answer.
    assert (record.prompt_tokens, record.completion_tokens) == (150 + 170, 1 + len(LAPTOP.pieces))
    assert _usage(pool, h.tenant) == [("chat.completions", False, 320, 9)]
    assert {"select", "first_token"} <= set(record.timings_ms)
    (_, choose, choose_params), (_, answer, _) = h.model.calls
    assert (choose_params.max_tokens, choose_params.temperature) == (8, 0.0)
    assert "Which passages answer this question?" in choose[-1].content
    assert answer[: len(choose)] == choose  # the same conversation: the prefix cache serves the second step
    assert (answer[-2].role, answer[-2].content) == ("assistant", "2")
    assert "from passage 2," in answer[-1].content


async def test_a_two_step_prompt_abstains_when_the_model_names_no_passage(
    harness: Build, pool: ConnectionPool[Conn]
) -> None:
    for reply in ("0", "None of them.", "7"):  # 7: no such passage was shown
        h = harness({"answer": [Script(pieces=(reply,)), LAPTOP]}, prompt="v5")
        record = final_record(await h.ask(Message("user", "What is the moon made of?")))
        assert record.text == ABSTAIN
        assert record.verdict.outcome == "abstain"
        assert not record.verdict.flagged
        assert len(h.model.calls) == 1
        assert _stored_outcome(pool, record) == ("abstain", [])


async def test_a_two_step_prompt_without_a_model_is_extractive(harness: Build) -> None:
    h = harness({}, prompt="v5")
    record = final_record(await h.ask(Message("user", "How do I travel?")))
    assert record.verdict.outcome == "extractive"
    assert record.text.startswith(EXTRACTIVE_NOTE)


async def test_a_long_question_takes_its_length_from_the_passages_twice_with_two_steps(harness: Build) -> None:
    long_passages = [candidate(1, "Trains are booked. " * 60), candidate(2, "Laptops come from IT. " * 60)]
    short = harness({"answer": ANSWER}, passages=long_passages, prompt="v5")
    long = harness({"answer": ANSWER}, passages=long_passages, prompt="v5")
    asked = "How do I travel? " + "Please be precise about it. " * 40
    await short.ask(Message("user", "How do I travel?"))
    await long.ask(Message("user", asked))

    def prompt_chars(h: Harness) -> int:
        return sum(len(m.content) for m in h.model.calls[0][1])

    short_total, long_total = prompt_chars(short), prompt_chars(long)
    # The question is ~1,100 characters longer: the passages shrank by about twice that, so the whole
    # first prompt is shorter than the short question's, not longer.
    assert long_total < short_total
