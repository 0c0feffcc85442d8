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
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry
from pythonjsonlogger.json import JsonFormatter

import sourcebook
from sourcebook.settings import Settings

_QUIET_LOGGERS = ("pgserver", "yoyo", "httpx", "httpcore", "urllib3", "filelock", "psycopg.pool")


@dataclass(slots=True)
class Telemetry:
    tracer_provider: TracerProvider
    registry: CollectorRegistry

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()


def wants_json(log_format: str, *, is_tty: bool) -> bool:
    return log_format == "json" or (log_format == "auto" and not is_tty)


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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


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
