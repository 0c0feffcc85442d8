"""The HTTP API (FastAPI): the app, its middleware and its error envelope. The routes live in
``serving.routes``: ``answers`` (chat, retrieval, feedback), ``documents``, ``admin``, ``policy``,
``reviews`` and ``health``.

Models, pools and clients are built once in the lifespan and held on ``app.state.services``; routes
parse, call one service, and return a body or a stream. Every failure leaves in one envelope
(OpenAI's ``{"error": {...}}``), inside an SSE stream too, and never with a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.metrics import Metrics, Observe
from serving.protocol import ChatCompletionChunk
from serving.routes import admin, answers, documents, health, policy, reviews
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

log = logging.getLogger(__name__)


def _error_response(exc: SourcebookError) -> JSONResponse:
    headers = None
    if exc.code is ErrorCode.UNAUTHENTICATED:
        headers = {"WWW-Authenticate": "Bearer"}
    elif exc.code is ErrorCode.RATE_LIMITED:
        headers = {"Retry-After": str(exc.details.get("retry_after_s", 1))}
    return JSONResponse(exc.envelope(), status_code=exc.http_status, headers=headers)


def _plain_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": code, "code": code}}, status_code=status)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413), whether or not Content-Length is sent.

    Bodies of the ``streamed`` paths (uploads) have their own, larger limit and are passed on as
    they arrive, counted: the route's reading fails with 413 once the count passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int, streamed: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.streamed = dict(streamed or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.streamed.get(scope["path"], self.limit)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _plain_error(413, "payload_too_large", _too_large(limit))(scope, receive, send)
            return
        if scope["path"] in self.streamed:
            await self.app(scope, _counted(receive, limit), send)
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
                await _plain_error(413, "payload_too_large", _too_large(self.limit))(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks)}], receive), send)


def _too_large(limit: int) -> str:
    return f"the request body is over the limit of {limit:,} bytes"


def _counted(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise SourcebookError(ErrorCode.PAYLOAD_TOO_LARGE, _too_large(limit))
        return message

    return counting


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


def _register_routes(app: FastAPI) -> None:
    app.include_router(health.router)
    app.include_router(answers.router)
    app.include_router(documents.router)
    app.include_router(admin.router)
    app.include_router(policy.router)
    app.include_router(reviews.router)


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

    @app.exception_handler(psycopg.Error)
    @app.exception_handler(PoolTimeout)
    async def database(request: Request, exc: Exception) -> JSONResponse:
        # Connections refused, dropped or exhausted: the caller may retry; anything else is ours.
        if isinstance(exc, psycopg.OperationalError | PoolTimeout):
            log.warning("database unavailable", extra={"error": type(exc).__name__, "path": request.url.path})
            error = SourcebookError(ErrorCode.DATABASE_UNAVAILABLE, "the database is unavailable; retry shortly")
        else:
            log.error("database error", extra={"error": type(exc).__name__, "path": request.url.path})
            error = SourcebookError(ErrorCode.DATABASE_ERROR, "a database error; it has been logged")
        return _error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"path": request.url.path})
        return _error_response(SourcebookError(ErrorCode.INTERNAL, "internal error; it has been logged"))


def _document_stream_chunks(app: FastAPI) -> None:
    """FastAPI names the response models of JSON bodies only: add the schema of the chunks that the
    chat route's event stream refers to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ChatCompletionChunk" not in components:
            chunk = ChatCompletionChunk.model_json_schema(
                ref_template="#/components/schemas/{model}", mode="serialization"
            )
            for name, definition in chunk.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["ChatCompletionChunk"] = chunk
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings) -> FastAPI:
    """The API: its services (database, models, clients of ``settings``) are built in the lifespan."""
    from serving.runtime import build_services

    metrics = Metrics(CollectorRegistry(auto_describe=True))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = await build_services(settings, stack, metrics)
            yield

    app = FastAPI(
        title="Sourcebook",
        version="0.1.0",
        description="Answers from your documents, with citations, for the people allowed to read them.",
        lifespan=lifespan,
    )
    _register_routes(app)
    _register_errors(app)
    _document_stream_chunks(app)
    uploads = settings.upload_max_mb * settings.upload_max_files * 2**20 + 2**20
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes, streamed={"/v1/documents": uploads})
    # Outermost: every response, refusals by BodyLimit included, is traced and counted.
    app.add_middleware(Observe, metrics=metrics)
    return app
