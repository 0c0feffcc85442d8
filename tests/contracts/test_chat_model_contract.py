"""The ``ChatModel`` contract (answer/types.py), run against every implementation: the reply streams
as deltas that name the model, each piece with the usage so far and the last within ``max_tokens``, a stream
closed early is let go, and no endpoint answering is ``model_unavailable`` within the deadline."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import pytest

from answer.generator import OpenAIChatModel, build_endpoints
from answer.types import ChatModel, Delta, GenerationParams, Message
from sourcebook.errors import ErrorCode, SourcebookError
from tests.conftest import make_settings
from tests.doubles import Script, ScriptedChatModel
from tests.serving_helpers import free_port

HELLO = [Message("system", "You are brief."), Message("user", "Say hello.")]
SHORT = GenerationParams(max_tokens=8, temperature=0.0, first_token_s=60)


@dataclass(frozen=True, slots=True)
class Models:
    working: ChatModel
    broken: ChatModel


def _openai(urls: list[str], tmp_path: Path) -> OpenAIChatModel:
    endpoints = build_endpoints(urls, "auto", make_settings(tmp_path))
    return OpenAIChatModel({"answer": endpoints, "rewrite": endpoints}, retries=1, backoff_s=0.05)


@pytest.fixture(
    params=[pytest.param("scripted", marks=pytest.mark.unit), pytest.param("openai", marks=[pytest.mark.llm])]
)
async def models(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Models]:
    if request.param == "scripted":
        hello = Script(pieces=("Hello", " there", ",", " friend", "!", " How", " can", " I", " help", "?"))
        yield Models(ScriptedChatModel({"answer": hello, "rewrite": hello}), ScriptedChatModel({}))
        return
    server = request.getfixturevalue("small_llm")
    working = _openai([server.url], tmp_path)
    broken = _openai([f"http://127.0.0.1:{free_port()}/v1"], tmp_path)
    yield Models(working, broken)
    await working.close()
    await broken.close()


async def _collect(model: ChatModel, params: GenerationParams = SHORT) -> list[Delta]:
    async with aclosing(model.stream("answer", HELLO, params)) as deltas:
        return [delta async for delta in deltas]


@pytest.mark.anyio
async def test_the_reply_streams_with_the_model_named_and_the_usage_last(models: Models) -> None:
    deltas = await _collect(models.working)
    assert "".join(d.text for d in deltas).strip()
    assert all(d.model for d in deltas if d.text)
    assert deltas[-1].prompt_tokens
    assert deltas[-1].completion_tokens
    assert 1 <= deltas[-1].completion_tokens <= SHORT.max_tokens


@pytest.mark.anyio
async def test_every_piece_carries_the_usage_so_far(models: Models) -> None:
    deltas = [d for d in await _collect(models.working) if d.text]
    assert deltas
    assert all(d.prompt_tokens for d in deltas)
    counts = [d.completion_tokens or 0 for d in deltas]
    assert counts[0] >= 1
    assert counts == sorted(counts), "a stream closed early still knows what it cost"


@pytest.mark.anyio
async def test_max_tokens_bounds_the_reply(models: Models) -> None:
    deltas = await _collect(models.working, GenerationParams(max_tokens=2, temperature=0.0, first_token_s=60))
    assert deltas[-1].completion_tokens is not None
    assert deltas[-1].completion_tokens <= 2
    assert sum(1 for d in deltas if d.text) <= 2


@pytest.mark.anyio
async def test_a_stream_closed_after_its_first_piece_is_let_go(models: Models) -> None:
    async with aclosing(models.working.stream("answer", HELLO, SHORT)) as deltas:
        first = await anext(deltas)
    assert isinstance(first, Delta)
    assert await _collect(models.working)


@pytest.mark.anyio
async def test_no_endpoint_answering_is_model_unavailable_within_the_deadline(models: Models) -> None:
    started = time.monotonic()
    with pytest.raises(SourcebookError) as caught:
        await _collect(models.broken, GenerationParams(max_tokens=8, temperature=0.0, first_token_s=2.0))
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
    assert time.monotonic() - started < 10
