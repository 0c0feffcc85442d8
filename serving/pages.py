"""The response bodies of the routes for doc owners, admins and probes: documents, uploads, jobs,
usage and health (the answering bodies are in ``serving.protocol``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from serving.protocol import Body


class Document(Body):
    id: uuid.UUID
    source_uri: str
    title: str
    mime_type: str
    status: Literal["pending", "ready", "failed"]
    error: str | None
    version: int
    chunk_count: int
    size_bytes: int
    acl_groups: list[str]
    metadata: dict[str, Any]
    content_hash: str
    created_at: dt.datetime
    updated_at: dt.datetime


class IngestOutcome(Body):
    """What one run of an ingestion job recorded."""

    outcome: str
    detail: str
    attempt: int
    final: bool
    chunks: int
    embedded: int
    created_at: dt.datetime


class Ingestion(IngestOutcome):
    job_id: int | None


class DocumentDetail(Document):
    """A document with its last ten ingestion results, newest first."""

    ingestions: list[Ingestion]


class DocumentPage(Body):
    object: Literal["list"] = "list"
    data: list[Document]
    next_after: str | None


class DocumentDeleted(Body):
    object: Literal["document.deleted"] = "document.deleted"
    id: uuid.UUID
    source_uri: str
    deleted: bool


class UploadEntry(Body):
    """One uploaded file: ``detail`` only when it was ``already_queued``, ``upload_id`` only when ``queued``."""

    filename: str
    source_uri: str
    mime_type: str
    size_bytes: int
    sha256: str
    status: Literal["queued", "unchanged", "already_queued"]
    job_id: int | None
    detail: str | None = None
    upload_id: uuid.UUID | None = None


class UploadReceipt(Body):
    """Serialised with ``exclude_unset``: each entry carries only the keys its status gives it."""

    object: Literal["list"]
    batch_id: uuid.UUID
    data: list[UploadEntry]


class JobResult(IngestOutcome):
    document_id: uuid.UUID | None


class Job(Body):
    id: int
    status: str
    attempts: int
    source_uri: str | None
    upload_id: uuid.UUID | None
    scheduled_at: dt.datetime | None
    results: list[JobResult]


class UsageDay(Body):
    day: dt.date
    tenant: str
    model: str
    requests: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    generation_s: float
    p50_latency_ms: float
    p95_latency_ms: float


class UsageTotals(Body):
    requests: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class UsageForecast(Body):
    month: str
    month_to_date_usd: float
    projected_usd: float
    month_to_date_tokens: int
    projected_tokens: int
    method: str


class UsageReport(Body):
    object: Literal["usage"] = "usage"
    tenant: str
    since: dt.date
    until: dt.date
    data: list[UsageDay]
    totals: UsageTotals
    forecast: UsageForecast


class Health(Body):
    status: Literal["ok"]


class DatabaseCheck(Body):
    state: Literal["ok", "down"]
    error: str | None = None


class QueueCheck(Body):
    state: Literal["ok", "down"]
    waiting_jobs: int | None = None
    error: str | None = None


class SupervisorCheck(Body):
    state: str
    restarts: int
    last_restart: dict[str, str] | None
    speed: dict[str, float | int] | None


class EndpointCheck(Body):
    """A model endpoint: ``url`` for admin keys only, its load only when its requests are capped, the
    supervisor's status when one runs it, ``models`` when it answers and ``error`` when it doesn't."""

    url: str | None = None
    breaker: str
    in_flight: int | None = None
    queued: int | None = None
    max_in_flight: int | None = None
    supervisor: SupervisorCheck | None = None
    state: Literal["ok", "down"]
    error: str | None = None
    models: list[str] | None = None


class TrainedRerankerCheck(Body):
    state: Literal["on", "off"]
    trained_at: str
    held_out_gain: float | None
    reason: str


class RerankerCheck(Body):
    """The configured reranker, and for a keyed caller its tenant's trained one (``sourcebook reranker``)."""

    configured: str
    tenant: str | None = None
    trained: TrainedRerankerCheck | None = None


class ReadinessChecks(Body):
    database: DatabaseCheck
    queue: QueueCheck
    model_server: list[EndpointCheck]
    reranker: RerankerCheck | None = None


class Readiness(Body):
    """Serialised with ``exclude_unset``: a check carries only the keys its state gives it."""

    status: Literal["ready", "degraded", "unavailable"]
    checks: ReadinessChecks
