from __future__ import annotations

import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sourcebook.telemetry import TraceContext, configure_logging, configure_tracing, setup_telemetry, wants_json
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("fmt", "tty", "expected"),
    [("auto", False, True), ("auto", True, False), ("json", True, True), ("console", False, False)],
)
def test_json_logs_when_not_a_terminal(fmt: str, tty: bool, expected: bool) -> None:
    assert wants_json(fmt, is_tty=tty) is expected


def test_json_log_lines_carry_level_logger_and_extra(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(make_settings(tmp_path, log_format="json"))
    logging.getLogger("sourcebook.test").warning("ingested", extra={"documents": 3})
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["level"] == "WARNING"
    assert line["logger"] == "sourcebook.test"
    assert line["message"] == "ingested"
    assert line["documents"] == 3


def test_spans_reach_a_configured_processor(tmp_path: Path) -> None:
    provider = configure_tracing(make_settings(tmp_path))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("embed"):
        pass
    [span] = exporter.get_finished_spans()
    assert span.name == "embed"
    assert span.resource.attributes["service.name"] == "sourcebook"


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, int]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.rfile.read(length)
        self.received.append((self.path, self.headers["Content-Type"], length))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_spans_are_exported_by_otlp_only_when_configured(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        plain = configure_tracing(make_settings(tmp_path))
        with plain.get_tracer("test").start_as_current_span("dropped"):
            pass
        plain.force_flush()
        assert _Collector.received == []

        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        exported = configure_tracing(make_settings(tmp_path, otlp_endpoint=endpoint))
        with exported.get_tracer("test").start_as_current_span("generate"):
            pass
        assert exported.force_flush(timeout_millis=5000)
        exported.shutdown()
        [(path, content_type, length)] = _Collector.received
        assert path == "/v1/traces"
        assert content_type == "application/x-protobuf"
        assert length > 0
    finally:
        server.shutdown()


def test_setup_gives_a_private_metrics_registry(tmp_path: Path) -> None:
    one = setup_telemetry(make_settings(tmp_path))
    two = setup_telemetry(make_settings(tmp_path))
    assert one.registry is not two.registry
    one.shutdown()
    two.shutdown()


def test_log_records_carry_the_trace_id_of_the_current_span() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(TraceContext())
    logger = logging.getLogger(f"test.trace.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # whatever level an earlier test left the root logger at
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        logger.warning("inside")
    logger.warning("outside")
    inside, outside = records
    assert inside.trace_id == format(span.get_span_context().trace_id, "032x")  # type: ignore[attr-defined]
    assert not hasattr(outside, "trace_id")
