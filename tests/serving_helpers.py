"""Helpers for the answering tests: a real vLLM, the API on a real port, sample documents ingested."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from ingest.batch import build_request
from ingest.chunk import Chunker, ChunkSettings
from ingest.detect import Limits
from ingest.embed import SentenceTransformerEmbedder
from ingest.pipeline import IngestDeps, ingest_file
from retrieval.tokenize import Tokenizer
from serving.app import create_app
from sourcebook.db import Database
from sourcebook.keys import create_key, ensure_tenant
from sourcebook.llm import server as llm_server
from sourcebook.settings import Settings

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
PEPPER = "test-pepper-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SilentServer:
    """A real TCP server on 127.0.0.1 that accepts every connection and never answers: a model
    server hung past the handshake. Counts the connections it accepted."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self._held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


def start_small_llm(log_path: Path) -> llm_server.VllmServer:
    """SmolLM2-135M served by the real vLLM of .venv-llm (prepared by `sourcebook models prepare small`)."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return llm_server.start(settings, "small", port=free_port(), log_path=log_path, ready_timeout_s=300)


def ingest_samples(
    db: Database, embedder: SentenceTransformerEmbedder, tenant: str, names: Sequence[str], folder: Path = SAMPLES
) -> None:
    """Ingest sample files (or files of ``folder``) with their sidecar access lists, as `sourcebook ingest` would."""
    chunker = Chunker(embedder.count_tokens, ChunkSettings(embedder.max_seq_length))
    deps = IngestDeps(
        db.pool, db.space, embedder, chunker, Limits(8 * 2**20, 64 * 2**20), "auto", "test-fp", Tokenizer()
    )
    with db.pool.connection() as conn:
        ensure_tenant(conn, tenant)
    for name in names:
        request = build_request(folder / name, tenant_id=tenant, groups=(), public=folder != SAMPLES)
        result = ingest_file(deps, request, lambda conn, r: None)
        assert result.outcome == "ingested", result


def new_key(
    db: Database, tenant: str, *, groups: Sequence[str] = ("everyone",), scopes: Sequence[str] = ("ask",)
) -> str:
    with db.pool.connection() as conn:
        ensure_tenant(conn, tenant)
        made = create_key(conn, tenant_id=tenant, name="test", scopes=list(scopes), groups=list(groups), pepper=PEPPER)
    return made.token


@contextlib.contextmanager
def running_api(settings: Settings) -> Iterator[tuple[str, uvicorn.Server]]:
    """The real app under uvicorn on a free loopback port, in a thread; yields its base URL."""
    with running_app(create_app(settings)) as served:
        yield served


@contextlib.contextmanager
def running_app(app: ASGIApp) -> Iterator[tuple[str, uvicorn.Server]]:
    """An ASGI app under uvicorn on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.1)
    try:
        yield base, server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def generation_tokens(llm: llm_server.VllmServer) -> float:
    """vLLM's own count of tokens generated so far (its Prometheus /metrics)."""
    text = httpx.get(llm.url.removesuffix("/v1") + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("vllm:generation_tokens_total"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("vLLM's /metrics has no vllm:generation_tokens_total")


def generation_settles_below(llm: llm_server.VllmServer, before: float, limit: int) -> float:
    """After a client leaves: wait until vLLM generates no more, and return how many tokens it made.
    Still generating, the request would go on to ``limit`` tokens (temperature 2 rarely stops early)."""
    time.sleep(3)
    settled = generation_tokens(llm)
    time.sleep(2)
    now = generation_tokens(llm)
    assert now == settled, "vLLM kept generating after the client left"
    assert now - before < limit, "the request ran to max_tokens: it was not aborted"
    return now - before


def auth(key: str) -> dict[str, str]:
    """The Authorization header of an API key."""
    return {"Authorization": f"Bearer {key}"}
