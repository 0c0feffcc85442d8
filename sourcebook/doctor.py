"""``sourcebook doctor``: check what Sourcebook needs and say how to fix each failure."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import psycopg

from sourcebook.db import Conn, locate_database, migrate
from sourcebook.db.connect import check_pgvector, connect, redact_url, scalar
from sourcebook.db.probe import probe_vector_operations
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.models import resolve_model, verify_bundled
from sourcebook.settings import Settings

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] != (3, 11):
        return Check("python", "fail", version, "use Python 3.11 (bash scripts/setup.sh makes .venv with it)")
    return Check("python", "ok", version)


def check_torch() -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("torch", "fail", f"not importable: {exc}", "run bash scripts/setup.sh")
    if torch.cuda.is_available():
        return Check("torch", "ok", f"{torch.__version__}, GPU: {torch.cuda.get_device_name(0)}")
    return Check("torch", "ok", f"{torch.__version__}, CPU with {torch.get_num_threads()} threads (no GPU found)")


StoredCheck = Callable[[Conn], Check]


def check_database(settings: Settings, stored: Sequence[StoredCheck] = ()) -> Iterator[Check]:
    """database, pgvector and migrations, then ``stored`` (checks of what the database holds, which the
    stages supply); stops at the first failure, since the rest depend on it."""
    try:
        located = locate_database(settings)
    except SourcebookError as exc:
        name = "vector operations" if exc.code is ErrorCode.PGVECTOR_UNUSABLE else "database"
        yield Check(name, "fail", exc.message, exc.hint or "")
        return
    try:
        where = f"embedded in {settings.pgdata}" if located.embedded else redact_url(located.url)
        try:
            with connect(located.url, timeout_s=settings.db_connect_timeout_s) as conn:
                version = scalar(conn, "SHOW server_version")
                yield Check("database", "ok", f"PostgreSQL {version} ({where})")
                yield Check("pgvector", "ok", check_pgvector(conn))
        except SourcebookError as exc:
            yield Check("pgvector" if "pgvector" in exc.code.slug else "database", "fail", exc.message, exc.hint or "")
            return
        yield check_vector_operations(located.url, located.embedded.log_path if located.embedded else None)
        waiting = migrate.pending(located.url)
        if waiting:
            yield Check(
                "migrations",
                "fail",
                f"{len(waiting)} pending: {', '.join(waiting)}",
                "run `sourcebook db upgrade`",
            )
        else:
            yield Check("migrations", "ok", "schema up to date")
            for check in stored:
                try:
                    with connect(located.url, timeout_s=settings.db_connect_timeout_s) as conn:
                        yield check(conn)
                except (SourcebookError, psycopg.Error) as exc:
                    message = exc.message if isinstance(exc, SourcebookError) else type(exc).__name__
                    yield Check(getattr(check, "__name__", "stored check"), "fail", message)
    finally:
        located.release()


def check_vector_operations(url: str, server_log: Path | None) -> Check:
    """Distances and an HNSW build in a throwaway backend: a pgvector built for another CPU dies here."""
    try:
        seconds = probe_vector_operations(url, server_log=server_log)
    except SourcebookError as exc:
        return Check("vector operations", "fail", exc.message, exc.hint or "")
    return Check("vector operations", "ok", f"distances and an HNSW build ran in {seconds:.2f} s (throwaway backend)")


def check_embedding_model(settings: Settings) -> Check:
    try:
        location = resolve_model(settings.embedding_model, offline=settings.offline)
        verify_bundled(location)
    except SourcebookError as exc:
        return Check("embedding model", "fail", exc.message, exc.hint or "")
    if location.path is None:
        return Check("embedding model", "warn", f"{location.name} (from the hub, not checked offline)")
    pooling = location.path / "1_Pooling" / "config.json"
    if pooling.is_file():
        dim = int(json.loads(pooling.read_text())["word_embedding_dimension"])
        if dim != settings.embedding_dim:
            return Check(
                "embedding model",
                "fail",
                f"{location.name} makes {dim}-d vectors",
                f"set SOURCEBOOK_EMBEDDING_DIM={dim}",
            )
    return Check("embedding model", "ok", f"{location.name} ({location.source}: {location.path})")


def probe_model_server(base_url: str, settings: Settings) -> tuple[list[str] | None, str | None]:
    """The models an OpenAI-compatible server lists, or None and why it could not be asked."""
    headers = {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value()}"}
    try:
        response = httpx.get(base_url + "/models", headers=headers, timeout=settings.llm_timeout_s)
        response.raise_for_status()
        return [m.get("id", "?") for m in response.json().get("data", [])], None
    except (httpx.HTTPError, ValueError) as exc:
        return None, type(exc).__name__


def check_model_server(settings: Settings) -> Check:
    """Each answer endpoint of ``SOURCEBOOK_LLM_BASE_URL``: ok when at least one serves a model; a
    server that ``sourcebook llm serve`` supervises here also shows its restarts."""
    from sourcebook.llm.supervisor import describe_supervision, status_for

    fix = "start vLLM (`sourcebook llm serve --model demo --detach`) or point SOURCEBOOK_LLM_BASE_URL at a server"
    found: list[str] = []
    down: list[str] = []
    for base in settings.llm_answer_urls:
        names, error = probe_model_server(base, settings)
        status = status_for(settings, base)
        supervised = f" ({describe_supervision(status)})" if status is not None else ""
        if names is None:
            down.append(f"{base} not reachable ({error}){supervised}")
        else:
            found.append(f"{base} serves {', '.join(names) or 'no models'}{supervised}")
    if not found:
        return Check("model server", "warn", "; ".join(down) + "; answers will be extractive", fix)
    return Check("model server", "ok", "; ".join(found + down))


def check_model_speed(settings: Settings) -> Check:
    """The decode and prompt rates `llm serve` measured at its last start, and the context budget they
    give; plainly slow below 5 tokens/s, with the options."""
    from sourcebook.llm.speed import context_chars, describe, verdict
    from sourcebook.llm.supervisor import status_for

    for base in settings.llm_answer_urls:
        status = status_for(settings, base)
        speed = status.measured() if status is not None else None
        if status is None or speed is None:
            continue
        budget = context_chars(speed, settings, max_model_len=status.max_model_len)
        detail = f"{base} {describe(speed)}; context budget {budget:,} characters"
        slow = verdict(speed, settings)
        if slow is not None:
            return Check("model speed", "warn", detail, slow)
        return Check("model speed", "ok", detail)
    return Check(
        "model speed",
        "ok",
        "not measured: no model server started by `sourcebook llm serve` on this machine serves the answers",
    )


def check_reranker(settings: Settings) -> Check:
    """No trained cross-encoder ships offline: ``none`` is a legitimate default, and said plainly."""
    name = settings.reranker_model.strip()
    if name.lower() in {"", "none"}:
        return Check(
            "reranker",
            "warn",
            "none: the fused BM25 + vector order is final (a tenant's own trained reranker, when on, excepted)",
            "set SOURCEBOOK_RERANKER_MODEL to a trained cross-encoder (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2), "
            "or train one per tenant (`sourcebook reranker train --tenant T`)",
        )
    try:
        location = resolve_model(name, offline=settings.offline)
    except SourcebookError as exc:
        return Check("reranker", "fail", exc.message, exc.hint or "")
    return Check(
        "reranker",
        "ok",
        f"{location.name} ({location.source}), top {settings.rerank_candidates} within {settings.rerank_budget_ms} ms",
    )


def run_checks(settings: Settings, stored: Sequence[StoredCheck] = ()) -> list[Check]:
    checks: list[Check] = [check_python(), check_torch()]
    checks.extend(check_database(settings, stored))
    steps: list[Callable[[Settings], Check]] = [
        check_embedding_model,
        check_reranker,
        check_model_server,
        check_model_speed,
    ]
    checks.extend(step(settings) for step in steps)
    return checks
