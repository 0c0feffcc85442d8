"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test module."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from sourcebook.db import migrate
from sourcebook.db.connect import ensure_database
from sourcebook.db.embedded import EmbeddedPostgres, start_embedded
from sourcebook.settings import Settings

TEST_PEPPER = "test-pepper-0123456789abcdef0123456789abcdef"

# What the CLI and the API do at start-up: keep third-party libraries offline and quiet.
Settings(_env_file=None).apply_library_env()  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly: nothing leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("SOURCEBOOK_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands under test configure logging onto captured streams; put the root logger back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = start_embedded(tmp_path_factory.mktemp("pg") / "data")
    yield server
    server.release()


@contextmanager
def _fresh_database(server: EmbeddedPostgres, label: str) -> Iterator[str]:
    name = f"t_{re.sub(r'[^a-z0-9]+', '_', label.lower())[:40]}_{secrets.token_hex(3)}"
    ensure_database(server.admin_url, name, timeout_s=10)
    try:
        yield server.url(name)
    finally:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_database_url(pg_server: EmbeddedPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    with _fresh_database(pg_server, request.node.name) as url:
        yield url


@pytest.fixture(scope="module")
def database_url(pg_server: EmbeddedPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with every migration applied, shared by one test module."""
    with _fresh_database(pg_server, request.module.__name__.rsplit(".", 1)[-1]) as url:
        migrate.upgrade(url)
        yield url


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "_env_file": None,
        "data_dir": tmp_path,
        "key_pepper": TEST_PEPPER,
        "environment": "test",
        "llm_base_url": "http://127.0.0.1:9/v1",
        "llm_timeout_s": 0.5,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url)


@pytest.fixture(scope="session")
def small_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real vLLM serving SmolLM2-135M for the session (`bash scripts/setup_llm.sh` and
    `sourcebook models prepare small` provide it; scripts/test.sh runs both)."""
    from tests.serving_helpers import start_small_llm

    server = start_small_llm(tmp_path_factory.mktemp("vllm") / "vllm.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def spans() -> object:
    """Every span of this process kept in memory (an InMemorySpanExporter), on the SDK tracer provider
    the CLI would install (installed here when none is yet)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def cli_env(database_url: str) -> dict[str, str]:
    """The environment the CLI tests run ``sourcebook`` in: the test database, quiet logs, wide tables."""
    return {
        "DATABASE_URL": database_url,
        "SOURCEBOOK_KEY_PEPPER": TEST_PEPPER,
        "SOURCEBOOK_ENVIRONMENT": "test",
        "SOURCEBOOK_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }
