"""Routes for asking: OpenAI-compatible chat completions (plain or SSE), models, retrieval, feedback."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import asdict
from functools import partial
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query
from sse_starlette.sse import EventSourceResponse

from answer.feedback import Feedback, add_feedback, list_feedback
from answer.types import AnswerRequest, Event, Finished, Piece, Started
from retrieval.pipeline import Retrieval
from retrieval.types import Caller, passage_json
from serving.deps import PrincipalDep, Services, ServicesDep
from serving.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkDelta,
    FeedbackItem,
    FeedbackOut,
    FeedbackPage,
    FeedbackRequest,
    ModelList,
    RetrieveRequest,
    RetrieveResponse,
    WirePassage,
    chunk,
    completion,
    final_chunk,
)
from serving.protocol import models as model_list
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import Principal
from sourcebook.usage import UsageEvent, record_usage

log = logging.getLogger(__name__)

SSE_PING_S = 15

router = APIRouter()


def _answer_request(body: ChatCompletionRequest, principal: Principal) -> AnswerRequest:
    return AnswerRequest(
        tenant_id=principal.tenant_id,
        groups=principal.groups,
        api_key_id=principal.key_id,
        messages=body.domain_messages(),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
    )


async def _sse(
    services: Services, first: Started, events: AsyncGenerator[Event, None]
) -> AsyncIterator[dict[str, str]]:
    created = int(time.time())
    assistant = services.settings.assistant_name

    def data(body: ChatCompletionChunk | dict[str, Any]) -> dict[str, str]:
        if isinstance(body, ChatCompletionChunk):
            body = body.model_dump(mode="json", exclude_unset=True)
        return {"data": json.dumps(body, ensure_ascii=False)}

    opening = ChunkDelta(role="assistant", content="")
    yield data(chunk(first.answer_id, assistant=assistant, created=created, delta=opening))
    try:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, Piece):
                    body = chunk(
                        first.answer_id,
                        assistant=assistant,
                        created=created,
                        delta=ChunkDelta(content=event.text),
                        citations=event.citations,
                    )
                    yield data(body)
                elif isinstance(event, Finished):
                    yield data(final_chunk(event.record, assistant=assistant, created=created))
    except SourcebookError as exc:
        yield data(exc.envelope())
    except Exception:
        log.exception("answer stream failed")
        yield data(SourcebookError(ErrorCode.INTERNAL, "the answer failed; it has been logged").envelope())
    yield {"data": "[DONE]"}


@router.get("/v1/models")
async def models(services: ServicesDep, principal: PrincipalDep) -> ModelList:
    return model_list(services.settings.assistant_name)


# The stream's events are ChatCompletionChunk bodies (the app's OpenAPI document links the schema).
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/ChatCompletionChunk"}}}}
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=STREAM_RESPONSE)
async def chat(
    body: ChatCompletionRequest, services: ServicesDep, principal: PrincipalDep
) -> ChatCompletion | EventSourceResponse:
    principal.require("ask")
    assistant = services.settings.assistant_name
    if body.model != assistant:
        raise SourcebookError(
            ErrorCode.NOT_FOUND, f"the model {body.model!r} does not exist", hint=f"use model {assistant!r}"
        )
    events = services.answers.run(_answer_request(body, principal))
    if body.stream:
        # Everything before generation (validation, rewrite, retrieval) fails as a plain HTTP error.
        first = await anext(events)
        assert isinstance(first, Started)
        return EventSourceResponse(_sse(services, first, events), ping=SSE_PING_S)
    async with aclosing(events):
        async for event in events:
            if isinstance(event, Finished):
                return completion(event.record, assistant=assistant, created=int(time.time()))
    raise SourcebookError(ErrorCode.INTERNAL, "the answer ended without a result")


@router.post("/v1/retrieve")
async def retrieve(body: RetrieveRequest, services: ServicesDep, principal: PrincipalDep) -> RetrieveResponse:
    principal.require("ask")
    started = time.perf_counter()
    # The query goes through the question's input checks: what is searched and echoed is redacted.
    screened = await anyio.to_thread.run_sync(services.answers.screen, principal.tenant_id, body.query)
    if screened.outcome != "allow":
        reasons = ", ".join(f.code for f in screened.findings if f.flag) or "policy"
        raise SourcebookError(ErrorCode.FORBIDDEN, f"the query was refused by the tenant's guardrails ({reasons})")
    result = await anyio.to_thread.run_sync(
        partial(
            services.retrieval.retrieve,
            screened.question,
            caller=Caller(principal.tenant_id, principal.groups),
            mode=body.mode,
            filters=body.filters(),
            top_k=body.top_k,
        )
    )
    services.metrics.observe_stages(result.timings_ms)
    await anyio.to_thread.run_sync(_record_retrieval, services, principal, result, started)
    return RetrieveResponse(
        query=screened.question,
        rewritten_query=result.rewrite.text,
        mode=result.mode,
        data=[WirePassage.model_validate(passage_json(rank, p)) for rank, p in enumerate(result.passages, start=1)],
        timings_ms=result.timings_ms,
    )


def _record_retrieval(services: Services, principal: Principal, result: Retrieval, started: float) -> None:
    event = UsageEvent(
        tenant_id=principal.tenant_id,
        api_key_id=principal.key_id,
        route="retrieve",
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        stage_ms=result.timings_ms,
    )
    with services.pool.connection() as conn:
        record_usage(conn, event, services.settings.prices)


@router.post("/v1/feedback", status_code=201)
async def feedback(body: FeedbackRequest, services: ServicesDep, principal: PrincipalDep) -> FeedbackOut:
    principal.require("ask")

    def store() -> Feedback:
        with services.pool.connection() as conn:
            return add_feedback(
                conn,
                tenant_id=principal.tenant_id,
                api_key_id=principal.key_id,
                answer_id=body.answer_id,
                rating=body.score,
                comment=body.comment,
                correction=body.correction,
            )

    stored = await anyio.to_thread.run_sync(store)
    return FeedbackOut.model_validate(_rated(asdict(stored)))


@router.get("/v1/feedback")
async def feedback_list(
    services: ServicesDep,
    principal: PrincipalDep,
    rating: Literal["up", "down"] | None = None,
    since: dt.datetime | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FeedbackPage:
    principal.require("eval")

    def load() -> list[dict[str, Any]]:
        with services.pool.connection() as conn:
            return list_feedback(
                conn,
                tenant_id=principal.tenant_id,
                groups=None if "admin" in principal.scopes else principal.groups,
                rating=None if rating is None else (1 if rating == "up" else -1),
                since=since,
                after_id=after,
                limit=limit,
            )

    rows = await anyio.to_thread.run_sync(load)
    return FeedbackPage(
        data=[FeedbackItem.model_validate(_rated(row)) for row in rows],
        next_after=rows[-1]["id"] if len(rows) == limit else None,
    )


def _rated(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "rating": "up" if row["rating"] > 0 else "down"}
