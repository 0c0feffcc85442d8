"""Prometheus metrics of the API process, and the ASGI middleware that traces and counts requests.

Counters and histograms live in a registry of the app's own. What belongs to the whole deployment
(the ingestion queue, ingestion throughput of all workers) is read from PostgreSQL when scraped, so
every replica reports the same truth; each replica's own traffic is its own series (scrape them all).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

import psycopg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from answer.generator import Endpoint
from answer.types import AnswerRecord
from sourcebook.db import Conn
from sourcebook.telemetry import TRACER_NAME

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
_BREAKER_STATES = ("closed", "half_open", "open")
# Label values come from a fixed set: anything else a client sends is "OTHER", so series stay bounded.
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Ingestion throughput is the chunks written by all workers over this many seconds.
INGEST_WINDOW_S = 300


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "sourcebook_http_requests", "HTTP requests by route and status", ["route", "method", "status"],
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "sourcebook_http_request_duration_seconds", "HTTP request latency (to the end of the body)",
            ["route", "method"], buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.stages = Histogram(
            "sourcebook_stage_duration_seconds", "Latency of each answering and retrieval stage", ["stage"],
            buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tokens = Counter("sourcebook_tokens", "Model tokens", ["model", "kind"], registry=registry)
        self.answers = Counter("sourcebook_answers", "Answers by verdict", ["outcome"], registry=registry)
        self.cache = Counter("sourcebook_answer_cache", "Answer cache lookups", ["result"], registry=registry)
        self.rate_limited = Counter(
            "sourcebook_rate_limited", "Requests refused by a rate limit", ["kind"], registry=registry
        )

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        for name, ms in timings_ms.items():
            self.stages.labels(name).observe(ms / 1000)

    def observe_answer(self, record: AnswerRecord, *, cache_enabled: bool) -> None:
        self.observe_stages(record.timings_ms)
        self.answers.labels(record.verdict.outcome).inc()
        if cache_enabled:
            self.cache.labels("hit" if record.cached else "miss").inc()
        if not record.cached:
            self.tokens.labels(record.model, "prompt").inc(record.prompt_tokens)
            self.tokens.labels(record.model, "completion").inc(record.completion_tokens)


class DeploymentCollector(Collector):
    """Gauges read at scrape time: breaker states, and from PostgreSQL the queue and ingestion."""

    def __init__(self, pool: ConnectionPool[Conn], endpoints: Callable[[], Sequence[Endpoint]]) -> None:
        self._pool = pool
        self._endpoints = endpoints

    def collect(self) -> Iterator[Metric]:
        breaker = GaugeMetricFamily(
            "sourcebook_breaker_state", "Circuit breaker per model endpoint (1 = in this state)",
            labels=["endpoint", "state"],
        )  # fmt: skip
        for endpoint in self._endpoints():
            for state in _BREAKER_STATES:
                breaker.add_metric([endpoint.base_url, state], 1.0 if endpoint.state == state else 0.0)
        yield breaker
        up = GaugeMetricFamily("sourcebook_database_up", "Whether PostgreSQL answered the scrape's queries")
        try:
            queue, ingested, results = self._database()
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("metrics: database unavailable", extra={"error": type(exc).__name__})
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        depth = GaugeMetricFamily("sourcebook_queue_jobs", "Ingestion jobs by status", labels=["status"])
        for status, count in queue:
            depth.add_metric([status], count)
        yield depth
        yield GaugeMetricFamily(
            "sourcebook_ingest_chunks_per_second",
            f"Chunks written by all ingestion workers per second over the last {INGEST_WINDOW_S} s",
            value=ingested / INGEST_WINDOW_S,
        )
        outcomes = GaugeMetricFamily(
            "sourcebook_ingest_files_recent", f"Files ingested in the last {INGEST_WINDOW_S} s by outcome",
            labels=["outcome"],
        )  # fmt: skip
        for outcome, count in results:
            outcomes.add_metric([outcome], count)
        yield outcomes

    def _database(self) -> tuple[list[tuple[str, int]], float, list[tuple[str, int]]]:
        with self._pool.connection(timeout=2.0) as conn:
            queue = conn.execute(
                "SELECT status::text, count(*) FROM procrastinate_jobs WHERE queue_name = 'ingest' GROUP BY 1"
            ).fetchall()
            window = conn.execute(
                "SELECT outcome, count(*), coalesce(sum(chunks), 0) FROM ingest_results "
                "WHERE created_at > now() - make_interval(secs => %s) AND final GROUP BY 1",
                (INGEST_WINDOW_S,),
            ).fetchall()
        chunks = sum(float(str(row[2])) for row in window)
        return (
            [(str(s), int(str(c))) for s, c in queue],
            chunks,
            [(str(o), int(str(c))) for o, c, _ in window],
        )


class Observe:
    """Outermost middleware: a server span per request (its trace id in every log line of it), and
    the request counter and latency histogram labelled by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        tracer = trace.get_tracer(TRACER_NAME)
        with tracer.start_as_current_span(f"{method} {scope['path']}", kind=SpanKind.SERVER) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                route = _route(scope)
                span.update_name(f"{method} {route}")
                span.set_attributes(
                    {"http.request.method": method, "http.route": route, "http.response.status_code": status}
                )
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                self.metrics.requests.labels(route, method, str(status)).inc()
                self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
