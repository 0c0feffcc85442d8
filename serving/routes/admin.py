"""Routes for admins: usage and cost of their tenant, with the month's forecast."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query

from serving.deps import PrincipalDep, ServicesDep
from serving.pages import UsageReport
from sourcebook.usage import usage_report

router = APIRouter()
# Days a usage report may name: a year past the last one would overflow ``until + 1 day``.
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2999, 12, 31)
Day = Annotated[dt.date | None, Query(ge=FIRST_DAY, le=LAST_DAY)]


@router.get("/v1/usage")
async def usage(
    services: ServicesDep,
    principal: PrincipalDep,
    since: Day = None,
    until: Day = None,
) -> UsageReport:
    """Requests, tokens, latency and cost per day and model for the caller's tenant (scope ``admin``)."""
    principal.require("admin")

    def load() -> dict[str, Any]:
        with services.pool.connection() as conn:
            return usage_report(conn, tenant_id=principal.tenant_id, since=since, until=until)

    return UsageReport.model_validate({"tenant": principal.tenant_id, **await anyio.to_thread.run_sync(load)})
