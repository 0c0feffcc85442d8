from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from sourcebook.doctor import check_model_server, check_python, check_reranker, run_checks
from sourcebook.settings import Settings
from tests.conftest import make_settings


def _by_name(settings: Settings) -> dict[str, tuple[str, str, str]]:
    return {c.name: (c.status, c.detail, c.fix) for c in run_checks(settings)}


@pytest.mark.db
def test_a_healthy_setup_passes_every_check_but_the_absent_model_server(settings: Settings) -> None:
    checks = _by_name(settings)
    for name in ("python", "torch", "database", "pgvector", "vector operations", "migrations", "embedding model"):
        assert checks[name][0] == "ok", (name, checks[name])
    assert checks["pgvector"][1] == "0.8.6"
    assert "HNSW build ran in" in checks["vector operations"][1]
    status, detail, fix = checks["model server"]
    assert status == "warn"
    assert "not reachable" in detail
    assert "SOURCEBOOK_LLM_BASE_URL" in fix
    status, detail, fix = checks["reranker"]
    assert status == "warn"
    assert detail.startswith("none: the fused BM25 + vector order is final")
    assert "SOURCEBOOK_RERANKER_MODEL" in fix
    assert "sourcebook reranker train" in fix


def test_a_configured_reranker_is_resolved(tmp_path: Path) -> None:
    ok = check_reranker(make_settings(tmp_path, reranker_model="all-MiniLM-L6-v2", rerank_candidates=12))
    assert ok.status == "ok"
    assert "top 12" in ok.detail
    missing = check_reranker(make_settings(tmp_path, reranker_model="/nonexistent/reranker"))
    assert missing.status == "fail"


@pytest.mark.db
def test_pending_migrations_fail_with_the_command_to_run(tmp_path: Path, empty_database_url: str) -> None:
    status, detail, fix = _by_name(make_settings(tmp_path, database_url=empty_database_url))["migrations"]
    assert status == "fail"
    assert "0001_initial" in detail
    assert "0003_procrastinate" in detail
    assert fix == "run `sourcebook db upgrade`"


@pytest.mark.unit
def test_an_unreachable_database_fails_with_a_fix(tmp_path: Path) -> None:
    checks = _by_name(make_settings(tmp_path, database_url="postgresql://sb:pw@127.0.0.1:1/sb", db_connect_timeout_s=1))
    status, detail, fix = checks["database"]
    assert status == "fail"
    assert "pw" not in detail
    assert "DATABASE_URL" in fix
    assert "pgvector" not in checks


@pytest.mark.unit
def test_a_wrong_embedding_dimension_fails(tmp_path: Path) -> None:
    checks = _by_name(
        make_settings(tmp_path, database_url="postgresql://x@127.0.0.1:1/x", embedding_dim=768, db_connect_timeout_s=1)
    )
    assert checks["embedding model"][0] == "fail"
    assert checks["embedding model"][2] == "set SOURCEBOOK_EMBEDDING_DIM=384"


@pytest.mark.unit
def test_python_check() -> None:
    assert check_python().status == "ok"


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"object": "list", "data": [{"id": "sourcebook-small"}]}'
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_openai_models() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


@pytest.mark.unit
def test_a_reachable_model_server_lists_its_models(tmp_path: Path, fake_openai_models: str) -> None:
    check = check_model_server(make_settings(tmp_path, llm_base_url=fake_openai_models))
    assert check.status == "ok"
    assert "sourcebook-small" in check.detail
