"""What routes depend on: the services built once in the lifespan, and the caller (authenticated,
then admitted by the rate limiter), as typed ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from answer.generator import OpenAIChatModel
from answer.pipeline import AnswerService
from ingest.uploads import Uploads
from retrieval.pipeline import RetrievalPipeline
from serving.metrics import Metrics
from serving.ratelimit import RateLimiter, rate_limited
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import Principal
from sourcebook.settings import Settings
from sourcebook.telemetry import stage


@dataclass(slots=True)
class Services:
    settings: Settings
    answers: AnswerService
    retrieval: RetrievalPipeline
    model: OpenAIChatModel
    pool: ConnectionPool[Conn]
    verify: Callable[[str], Principal]
    limiter: RateLimiter | None
    metrics: Metrics
    uploads: Uploads


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _principal(request: Request, services: ServicesDep) -> Principal:
    with stage("auth") as span:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SourcebookError(
                ErrorCode.UNAUTHENTICATED,
                "missing API key",
                hint="send `Authorization: Bearer <key>` (create one with `sourcebook keys create`)",
            )
        principal = await anyio.to_thread.run_sync(services.verify, token.strip())
        span.set_attributes({"sourcebook.tenant": principal.tenant_id, "sourcebook.key_id": principal.key_id})
        if services.limiter is not None:
            decision = await anyio.to_thread.run_sync(services.limiter.admit, principal.tenant_id, principal.key_id)
            if not decision.allowed:
                services.metrics.rate_limited.labels(decision.kind or "").inc()
                raise rate_limited(decision)
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]


async def _optional_principal(request: Request, services: ServicesDep) -> Principal | None:
    """The caller of an unauthenticated route (health), when it sent a valid key; anyone else is
    anonymous rather than refused, so a probe without a key keeps working."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return await anyio.to_thread.run_sync(services.verify, token.strip())
    except SourcebookError as exc:
        if exc.code is not ErrorCode.UNAUTHENTICATED:
            raise
        return None


OptionalPrincipalDep = Annotated[Principal | None, Depends(_optional_principal)]
