"""Health and metrics: liveness, readiness (database, queue, each model endpoint), Prometheus."""

from __future__ import annotations

from typing import Any

import anyio
import psycopg
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout

from answer.generator import Endpoint
from serving.deps import OptionalPrincipalDep, Services, ServicesDep
from serving.pages import Health, Readiness, RerankerCheck, TrainedRerankerCheck
from sourcebook.doctor import probe_model_server
from sourcebook.keys import Principal
from sourcebook.llm.supervisor import status_for

router = APIRouter()


@router.get("/health")
async def health() -> Health:
    return Health(status="ok")


@router.get("/health/ready", response_model_exclude_unset=True, responses={503: {"model": Readiness}})
async def ready(services: ServicesDep, caller: OptionalPrincipalDep, response: Response) -> Readiness:
    """The database and queue (required), and each model endpoint (without one, answers are
    extractive). The endpoints' URLs only for an ``admin`` key: they map the internal network."""
    checks = await anyio.to_thread.run_sync(_database_checks, services)
    endpoints = [await _endpoint_check(services, e) for e in services.model.routes["answer"]]
    if caller is None or "admin" not in caller.scopes:
        endpoints = [{k: v for k, v in e.items() if k != "url"} for e in endpoints]
    checks["model_server"] = endpoints
    if checks["database"]["state"] == "ok" and caller is not None:
        checks["reranker"] = await anyio.to_thread.run_sync(_reranker_check, services, caller)
    if checks["database"]["state"] != "ok":
        status, code = "unavailable", 503
    elif not any(e["state"] == "ok" for e in endpoints):
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    response.status_code = code
    return Readiness.model_validate({"status": status, "checks": checks})


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format; unauthenticated like /health (expose it to the scraper only)."""
    body = await anyio.to_thread.run_sync(generate_latest, services.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


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


def _reranker_check(services: Services, caller: Principal) -> RerankerCheck:
    """For a keyed caller (the configured name may be a folder): the configured reranker and its
    tenant's newest trained one."""
    from retrieval.rerank import latest_trained

    check = RerankerCheck(configured=services.settings.reranker_model, tenant=caller.tenant_id)
    try:
        with services.pool.connection(timeout=services.settings.db_connect_timeout_s) as conn:
            trained = latest_trained(conn, caller.tenant_id)
    except (psycopg.Error, PoolTimeout):
        return check
    if trained is None:
        return check
    return RerankerCheck(
        configured=check.configured,
        tenant=check.tenant,
        trained=TrainedRerankerCheck(
            state="on" if trained.enabled and services.settings.tenant_rerankers else "off",
            trained_at=trained.created_at.isoformat(),
            held_out_gain=trained.figures.get("held_out", {}).get("gain"),
            reason=trained.reason,
        ),
    )


async def _endpoint_check(services: Services, endpoint: Endpoint) -> dict[str, Any]:
    names, error = await anyio.to_thread.run_sync(probe_model_server, endpoint.base_url, services.settings)
    state: dict[str, Any] = {"url": endpoint.base_url, "breaker": endpoint.state, **endpoint.load()}
    supervisor = await anyio.to_thread.run_sync(status_for, services.settings, endpoint.base_url)
    if supervisor is not None:
        state["supervisor"] = {
            "state": supervisor.state,
            "restarts": supervisor.restarts,
            "last_restart": supervisor.last_restart,
            "speed": supervisor.speed,
        }
    if names is None:
        return {**state, "state": "down", "error": error}
    if supervisor is not None and supervisor.state != "ready":
        # Starting, restarting or measuring its speed: a stopping vLLM may still answer /v1/models,
        # and a new one answers before the supervisor has measured it. Ready when the supervisor says so.
        return {**state, "state": "down", "error": f"its supervisor is {supervisor.state}"}
    return {**state, "state": "ok", "models": names}
