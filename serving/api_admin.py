"""Routes for admins: usage and cost of their tenant, with the month's forecast."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
from fastapi import APIRouter

from serving.deps import PrincipalDep, ServicesDep
from serving.usage import usage_report

router = APIRouter()


@router.get("/v1/usage")
async def usage(
    services: ServicesDep,
    principal: PrincipalDep,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> dict[str, Any]:
    """Requests, tokens, latency and cost per day and model for the caller's tenant (scope ``admin``)."""
    principal.require("admin")

    def load() -> dict[str, Any]:
        with services.pool.connection() as conn:
            return usage_report(conn, tenant_id=principal.tenant_id, since=since, until=until)

    return {"object": "usage", "tenant": principal.tenant_id, **await anyio.to_thread.run_sync(load)}
