"""Routes for the tenant's policy: read it (scope ``admin`` or ``review``), set a new version (``admin``),
list its versions."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Query

from guardrails.policies import PolicyVersion, load_policy, policy_versions, save_policy
from guardrails.policy import TenantPolicy
from serving.deps import PrincipalDep, ServicesDep
from serving.protocol_policy import PolicyOut, PolicyRequest, PolicyVersionList, PolicyVersionOut

router = APIRouter()


@router.get("/v1/policy")
async def policy(
    services: ServicesDep,
    principal: PrincipalDep,
    version: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> PolicyOut:
    """The policy the tenant's answers are checked under now, or an earlier ``version``."""
    principal.require_any("admin", "review")

    def load() -> TenantPolicy:
        with services.pool.connection() as conn:
            return load_policy(conn, principal.tenant_id, version=version)

    return PolicyOut.of(await anyio.to_thread.run_sync(load))


@router.put("/v1/policy")
async def set_policy(body: PolicyRequest, services: ServicesDep, principal: PrincipalDep) -> PolicyOut:
    """Replace the tenant's policy: stored as its next version, which the next answer uses."""
    principal.require("admin")

    def store() -> TenantPolicy:
        with services.pool.connection() as conn:
            return save_policy(
                conn, tenant_id=principal.tenant_id, body=body.model_dump(mode="json"), api_key_id=principal.key_id
            )

    return PolicyOut.of(await anyio.to_thread.run_sync(store))


@router.get("/v1/policy/versions")
async def versions(services: ServicesDep, principal: PrincipalDep) -> PolicyVersionList:
    """Every stored version of the tenant's policy, newest first, with when and by which key it was set."""
    principal.require_any("admin", "review")

    def load() -> list[PolicyVersion]:
        with services.pool.connection() as conn:
            return policy_versions(conn, principal.tenant_id)

    rows = await anyio.to_thread.run_sync(load)
    return PolicyVersionList(tenant=principal.tenant_id, data=[PolicyVersionOut.of(v) for v in rows])
