"""Deadlines and admission against a model server that accepts the connection and never answers
(a real TCP server on 127.0.0.1): one deadline for the first token, retries inside it, queued callers
waiting within theirs, the rewrite's own deadline, and the labelled extractive answer past it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from answer.generator import OpenAIChatModel, build_endpoints
from answer.prompts import load_template
from answer.standalone import standalone_question
from answer.types import GenerationParams, Message
from ingest.embed import SentenceTransformerEmbedder
from sourcebook.db import open_database
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.models import resolve_model
from sourcebook.settings import Settings
from tests.conftest import make_settings
from tests.serving_helpers import SilentServer, free_port, ingest_samples, new_key, running_api

HELLO = [Message("user", "Say hello.")]
FOLLOW_UP = [Message("user", "How do I request a laptop?"), Message("assistant", "Use the form.")]


def params(first_token_s: float) -> GenerationParams:
    return GenerationParams(max_tokens=8, temperature=0.0, first_token_s=first_token_s)


def chat_model(settings: Settings, urls: list[str], *, retries: int, backoff_s: float = 0.05) -> OpenAIChatModel:
    endpoints = build_endpoints(urls, "auto", settings)
    return OpenAIChatModel({"answer": endpoints, "rewrite": endpoints}, retries=retries, backoff_s=backoff_s)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


async def fails_after(model: OpenAIChatModel, first_token_s: float) -> tuple[SourcebookError, float]:
    started = time.perf_counter()
    with pytest.raises(SourcebookError) as caught:
        async for _ in model.stream("answer", HELLO, params(first_token_s)):
            pass
    return caught.value, time.perf_counter() - started


@pytest.mark.anyio
async def test_a_silent_server_costs_one_deadline_not_retries_times_the_timeout(
    tmp_path: Path, silent: SilentServer
) -> None:
    settings = make_settings(tmp_path, llm_request_timeout_s=60, llm_breaker_failures=5)
    model = chat_model(settings, [silent.url], retries=3)
    error, elapsed = await fails_after(model, 1.0)
    assert error.code is ErrorCode.MODEL_UNAVAILABLE
    assert "within 1 s" in error.message
    assert "no first token before the deadline" in error.message
    assert 1.0 <= elapsed < 1.8
    assert model.routes["answer"][0].breaker.fail_counter == 1  # the missed deadline is the endpoint's failure
    await model.close()


@pytest.mark.anyio
async def test_retries_and_their_backoff_stop_at_the_deadline(tmp_path: Path) -> None:
    refused = f"http://127.0.0.1:{free_port()}/v1"
    model = chat_model(make_settings(tmp_path, llm_breaker_failures=5), [refused], retries=10, backoff_s=0.5)
    error, elapsed = await fails_after(model, 1.5)  # ten backoffs would wait 0.5 + 1 + 2 + 4 + 5 × 5 s
    assert error.code is ErrorCode.MODEL_UNAVAILABLE
    assert elapsed < 2.0
    await model.close()


@pytest.mark.anyio
async def test_admission_caps_requests_in_flight_and_the_queued_wait_within_their_deadline(
    tmp_path: Path, silent: SilentServer
) -> None:
    model = chat_model(make_settings(tmp_path, llm_max_in_flight=1, llm_breaker_failures=10), [silent.url], retries=0)
    endpoint = model.routes["answer"][0]
    outcomes: dict[str, float] = {}

    async def ask(name: str, first_token_s: float) -> None:
        error, elapsed = await fails_after(model, first_token_s)
        assert error.code is ErrorCode.MODEL_UNAVAILABLE
        outcomes[name] = elapsed

    async with anyio.create_task_group() as group:
        group.start_soon(ask, "holder", 1.0)
        await anyio.sleep(0.2)
        group.start_soon(ask, "turned away", 0.4)  # the one slot stays taken past its deadline
        group.start_soon(ask, "queued", 3.0)  # gets the slot at 1 s, then its own attempt until 3 s
        await anyio.sleep(0.1)
        assert endpoint.load() == {"in_flight": 1, "queued": 2, "max_in_flight": 1}
    assert 0.4 <= outcomes["turned away"] < 0.8
    assert 3.0 <= outcomes["queued"] < 3.6
    assert silent.accepted == 2  # the turned-away caller never reached the server
    assert endpoint.load()["in_flight"] == 0
    await model.close()


@pytest.mark.anyio
async def test_a_rewrite_past_its_deadline_falls_back_to_the_history_rules(
    tmp_path: Path, silent: SilentServer
) -> None:
    model = chat_model(make_settings(tmp_path, llm_request_timeout_s=60), [silent.url], retries=3)
    started = time.perf_counter()
    standalone = await standalone_question(
        model, load_template("rewrite", "v1"), "How long does it take?", FOLLOW_UP, deadline_s=0.5
    )
    assert time.perf_counter() - started < 1.0
    assert standalone.method == "history-rules"
    assert standalone.text == "How do I request a laptop? How long does it take?"
    await model.close()


@pytest.mark.db
@pytest.mark.model
def test_an_answer_past_its_first_token_deadline_is_the_labelled_extractive_one(
    database_url: str, tmp_path: Path, silent: SilentServer
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        llm_base_url=silent.url,
        llm_request_timeout_s=120,
        llm_retries=3,
        answer_first_token_s=2.0,
        rewrite_deadline_s=1.0,
        answer_cache=False,
    )
    with open_database(settings) as db:
        embedder = SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")
        ingest_samples(db, embedder, "acme", ["laptop_request_howto.md", "vpn_setup.md"])
        key = new_key(db, "acme")
    with running_api(settings) as (base, _):

        def ask(messages: list[dict[str, str]]) -> tuple[dict[str, object], float]:
            started = time.perf_counter()
            response = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "sourcebook", "messages": messages},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            assert response.status_code == 200
            return response.json(), time.perf_counter() - started

        data, elapsed = ask([{"role": "user", "content": "How do I request a laptop?"}])
        assert data["sourcebook"]["verdict"]["outcome"] == "extractive"  # type: ignore[index]
        assert data["choices"][0]["message"]["content"].startswith(  # type: ignore[index]
            "The language model is unavailable"
        )
        assert data["citations"]
        assert 2.0 <= elapsed < 5.0  # one deadline: not 4 attempts × 120 s

        follow_up = [
            {"role": "user", "content": "How do I request a laptop?"},
            {"role": "assistant", "content": "Use the form."},
            {"role": "user", "content": "How long does it take?"},
        ]
        data, elapsed = ask(follow_up)
        meta = data["sourcebook"]
        assert meta["rewrite_method"] == "history-rules"  # type: ignore[index]
        assert meta["verdict"]["outcome"] == "extractive"  # type: ignore[index]
        assert 3.0 <= elapsed < 6.0  # the rewrite's 1 s, then the answer's 2 s
