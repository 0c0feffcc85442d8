"""The HTTP API (FastAPI): OpenAI-compatible chat completions with citations, models, retrieval.

Models, pools and clients are built once in the lifespan and held on ``app.state.services``; routes
parse, call one service, and return a body or a stream. Every failure leaves in one envelope
(OpenAI's ``{"error": {...}}``), inside an SSE stream too, and never with a stack trace.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from typing import Annotated, Any, Literal

import anyio
import psycopg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool, PoolTimeout
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retrieval.pipeline import RetrievalPipeline
from retrieval.types import Caller, passage_json
from serving.answer import AnswerRequest, AnswerService, Event, Finished, Piece, Started
from serving.feedback import Feedback, add_feedback, list_feedback
from serving.llm import Endpoint, OpenAIChatModel
from serving.provenance import Conn
from serving.wire import (
    ChatCompletionRequest,
    FeedbackRequest,
    RetrieveRequest,
    chunk_body,
    completion_body,
    final_chunk_body,
    models_body,
)
from sourcebook.doctor import probe_model_server
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import Principal
from sourcebook.settings import Settings

log = logging.getLogger(__name__)

SSE_PING_S = 15


@dataclass(slots=True)
class Services:
    settings: Settings
    answers: AnswerService
    retrieval: RetrievalPipeline
    model: OpenAIChatModel
    pool: ConnectionPool[Conn]
    verify: Callable[[str], Principal]


def _error_response(exc: SourcebookError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.code is ErrorCode.UNAUTHENTICATED else None
    return JSONResponse(exc.envelope(), status_code=exc.http_status, headers=headers)


def _plain_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": code, "code": code}}, status_code=status)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413), whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _plain_error(413, "payload_too_large", self._message())(scope, receive, send)
            return
        # Buffered (it is at most ``limit`` bytes), so that an oversized body is refused before the
        # route reads any of it, and the route gets it back unchanged.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await _plain_error(413, "payload_too_large", self._message())(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks)}], receive), send)

    def _message(self) -> str:
        return f"the request body is over the limit of {self.limit:,} bytes"


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _principal(request: Request, services: ServicesDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SourcebookError(
            ErrorCode.UNAUTHENTICATED,
            "missing API key",
            hint="send `Authorization: Bearer <key>` (create one with `sourcebook keys create`)",
        )
    return await anyio.to_thread.run_sync(services.verify, token.strip())


PrincipalDep = Annotated[Principal, Depends(_principal)]


def _answer_request(body: ChatCompletionRequest, principal: Principal) -> AnswerRequest:
    return AnswerRequest(
        tenant_id=principal.tenant_id,
        groups=principal.groups,
        api_key_id=principal.key_id,
        messages=body.domain_messages(),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
    )


async def _sse(first: Started, events: AsyncGenerator[Event, None], assistant: str) -> AsyncIterator[dict[str, str]]:
    created = int(time.time())

    def data(body: dict[str, Any]) -> dict[str, str]:
        return {"data": json.dumps(body, ensure_ascii=False)}

    yield data(
        chunk_body(first.answer_id, assistant=assistant, created=created, delta={"role": "assistant", "content": ""})
    )
    try:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, Piece):
                    body = chunk_body(
                        first.answer_id,
                        assistant=assistant,
                        created=created,
                        delta={"content": event.text},
                        citations=event.citations,
                    )
                    yield data(body)
                elif isinstance(event, Finished):
                    yield data(final_chunk_body(event.record, assistant=assistant, created=created))
    except SourcebookError as exc:
        yield data(exc.envelope())
    except Exception:
        log.exception("answer stream failed")
        yield data(SourcebookError(ErrorCode.INTERNAL, "the answer failed; it has been logged").envelope())
    yield {"data": "[DONE]"}


def _register_routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready(services: ServicesDep) -> JSONResponse:
        """The database and queue (required), and each model endpoint (without one, answers are extractive)."""
        checks = await anyio.to_thread.run_sync(_database_checks, services)
        endpoints = [await _endpoint_check(services, e) for e in services.model.routes["answer"]]
        checks["model_server"] = endpoints
        if checks["database"]["state"] != "ok":
            status, code = "unavailable", 503
        elif not any(e["state"] == "ok" for e in endpoints):
            status, code = "degraded", 200
        else:
            status, code = "ready", 200
        return JSONResponse({"status": status, "checks": checks}, status_code=code)

    @app.get("/v1/models")
    async def models(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
        return models_body(services.settings.assistant_name)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(
        body: ChatCompletionRequest, services: ServicesDep, principal: PrincipalDep
    ) -> JSONResponse | EventSourceResponse:
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
            return EventSourceResponse(_sse(first, events, assistant), ping=SSE_PING_S)
        async for event in events:
            if isinstance(event, Finished):
                return JSONResponse(completion_body(event.record, assistant=assistant, created=int(time.time())))
        raise SourcebookError(ErrorCode.INTERNAL, "the answer ended without a result")

    @app.post("/v1/feedback", status_code=201)
    async def feedback(body: FeedbackRequest, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
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
        return {"object": "feedback", **_feedback_json(asdict(stored))}

    @app.get("/v1/feedback")
    async def feedback_list(
        services: ServicesDep,
        principal: PrincipalDep,
        rating: Literal["up", "down"] | None = None,
        since: dt.datetime | None = None,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        principal.require("eval")

        def load() -> list[dict[str, Any]]:
            with services.pool.connection() as conn:
                return list_feedback(
                    conn,
                    tenant_id=principal.tenant_id,
                    rating=None if rating is None else (1 if rating == "up" else -1),
                    since=since,
                    after_id=after,
                    limit=limit,
                )

        rows = await anyio.to_thread.run_sync(load)
        return {
            "object": "list",
            "data": [_feedback_json(row) for row in rows],
            "next_after": rows[-1]["id"] if len(rows) == limit else None,
        }

    @app.post("/v1/retrieve")
    async def retrieve(body: RetrieveRequest, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
        principal.require("ask")
        result = await anyio.to_thread.run_sync(
            partial(
                services.retrieval.retrieve,
                body.query,
                caller=Caller(principal.tenant_id, principal.groups),
                mode=body.mode,
                filters=body.filters(),
                top_k=body.top_k,
            )
        )
        return {
            "object": "list",
            "query": body.query,
            "rewritten_query": result.rewrite.text,
            "mode": result.mode,
            "data": [passage_json(rank, p) for rank, p in enumerate(result.passages, start=1)],
            "timings_ms": result.timings_ms,
        }


def _database_checks(services: Services) -> dict[str, Any]:
    try:
        with services.pool.connection(timeout=services.settings.db_connect_timeout_s) as conn:
            conn.execute("SELECT 1")
            row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()
    except (psycopg.Error, PoolTimeout) as exc:
        down = {"state": "down", "error": type(exc).__name__}
        return {"database": down, "queue": down}
    waiting = int(str(row[0])) if row else 0
    return {"database": {"state": "ok"}, "queue": {"state": "ok", "waiting_jobs": waiting}}


async def _endpoint_check(services: Services, endpoint: Endpoint) -> dict[str, Any]:
    names, error = await anyio.to_thread.run_sync(probe_model_server, endpoint.base_url, services.settings)
    state: dict[str, Any] = {"url": endpoint.base_url, "breaker": endpoint.state}
    if names is None:
        return {**state, "state": "down", "error": error}
    return {**state, "state": "ok", "models": names}


def _feedback_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "rating": "up" if row["rating"] > 0 else "down"}


def _register_errors(app: FastAPI) -> None:
    @app.exception_handler(SourcebookError)
    async def sourcebook_error(request: Request, exc: SourcebookError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("request failed", extra={"code": exc.code.slug, "path": request.url.path})
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"), "problem": err.get("msg", "")}
            for err in exc.errors()[:20]
        ]
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            message = "the request body is not valid JSON"
        else:
            first = problems[0] if problems else {"field": "", "problem": "invalid request"}
            message = f"invalid request: {first['field'] or 'body'}: {first['problem']}"
        return _error_response(SourcebookError(ErrorCode.INVALID_REQUEST, message, details={"problems": problems}))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return _plain_error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"path": request.url.path})
        return _error_response(SourcebookError(ErrorCode.INTERNAL, "internal error; it has been logged"))


ServicesFactory = Callable[[Settings, AsyncExitStack], Awaitable[Services]]


def create_app(settings: Settings, *, build: ServicesFactory | None = None) -> FastAPI:
    """The API; ``build`` makes its services (default: the database, models and clients of ``settings``)."""
    from serving.runtime import build_services

    factory = build or build_services

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = await factory(settings, stack)
            yield

    app = FastAPI(
        title="Sourcebook",
        version="0.1.0",
        description="Answers from your documents, with citations, for the people allowed to read them.",
        lifespan=lifespan,
    )
    _register_routes(app)
    _register_errors(app)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    return app
