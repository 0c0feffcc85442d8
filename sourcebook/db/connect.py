"""Connecting to PostgreSQL, checking pgvector, and translating psycopg's errors at the boundary."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from sourcebook.errors import ErrorCode, SourcebookError

# The one connection type every repository module takes (rows as tuples unless a cursor says otherwise).
Conn = psycopg.Connection[tuple[object, ...]]

MIN_PGVECTOR = (0, 8, 0)


def redact_url(url: str) -> str:
    """The URL with its password replaced, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, *, timeout_s: float, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
    """Open one connection, or raise ``config_invalid`` / ``database_unavailable``."""
    try:
        return psycopg.connect(url, connect_timeout=max(1, round(timeout_s)), autocommit=autocommit)
    except psycopg.ProgrammingError as exc:
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            f"the database URL {redact_url(url)!r} is malformed: {exc}",
            hint="DATABASE_URL must look like postgresql://user:password@host:5432/dbname",
        ) from exc
    except psycopg.OperationalError as exc:
        raise SourcebookError(
            ErrorCode.DATABASE_UNAVAILABLE,
            f"cannot connect to PostgreSQL at {redact_url(url)}: {str(exc).strip()}",
            hint="check that the server runs and DATABASE_URL is right, or unset DATABASE_URL "
            "to use the embedded PostgreSQL",
        ) from exc


def lost_connection(exc: BaseException) -> SourcebookError | None:
    """``database_unavailable`` for a connection refused, dropped or exhausted anywhere in ``exc``'s
    chain (procrastinate and yoyo wrap psycopg's errors); None for anything else."""
    from psycopg_pool import PoolTimeout

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.OperationalError | PoolTimeout) and not isinstance(
            seen, psycopg.errors.QueryCanceled
        ):
            reason = str(seen).strip().splitlines()[0] if str(seen).strip() else type(seen).__name__
            return SourcebookError(
                ErrorCode.DATABASE_UNAVAILABLE,
                f"the connection to PostgreSQL was lost or refused: {reason}",
                hint="check that PostgreSQL runs (`sourcebook doctor` checks it; the embedded server logs to "
                "<data dir>/postgres/log), then run the command again: finished work is kept",
            )
        seen = seen.__cause__ or seen.__context__
    return None


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def evaluate_pgvector(available: str | None, installed: str | None) -> str:
    """The usable pgvector version, or ``pgvector_missing`` saying what to do (pure)."""
    minimum = ".".join(map(str, MIN_PGVECTOR))
    if available is None:
        raise SourcebookError(
            ErrorCode.PGVECTOR_MISSING,
            "the PostgreSQL server has no pgvector extension",
            hint=f"install pgvector >= {minimum} on the server (e.g. the pgvector/pgvector image, "
            "or apt install postgresql-NN-pgvector), or unset DATABASE_URL to use the embedded server",
        )
    version = installed or available
    if parse_version(version) < MIN_PGVECTOR:
        where = "installed in this database" if installed else "available on the server"
        raise SourcebookError(
            ErrorCode.PGVECTOR_MISSING,
            f"pgvector {version} is {where}; Sourcebook needs >= {minimum} (iterative HNSW scans)",
            hint="upgrade the pgvector package, then run ALTER EXTENSION vector UPDATE"
            if installed
            else f"upgrade the server's pgvector package to >= {minimum}",
        )
    return version


def check_pgvector(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """Read the server's pgvector versions and evaluate them."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    available = str(row[0]) if row else None
    installed = str(row[1]) if row and row[1] is not None else None
    return evaluate_pgvector(available, installed)


def update_pgvector(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[str, str] | None:
    """Bring this database's ``vector`` extension to the server's version (a new server build ships a
    newer pgvector than the one the data directory was made with); ``(from, to)`` when it moved."""
    row = conn.execute(
        "SELECT installed_version, default_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if row is None or row[0] is None or row[0] == row[1]:
        return None
    conn.execute("ALTER EXTENSION vector UPDATE")
    return str(row[0]), str(row[1])


def scalar(conn: psycopg.Connection[tuple[object, ...]], query: str, params: tuple[object, ...] = ()) -> object:
    """The first column of the first row (raises ``database_error`` when there is no row)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise SourcebookError(ErrorCode.DATABASE_ERROR, f"no row from {query.split()[0]} query")
    return row[0]


def ensure_database(admin_url: str, name: str, *, timeout_s: float) -> bool:
    """Create database ``name`` if it doesn't exist; True when it was created. Safe when several processes
    start at once on a new server (a worker and ``sourcebook ingest --no-wait``): the ones that lose the
    race to create it find it made."""
    with connect(admin_url, timeout_s=timeout_s) as conn:
        if scalar(conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)):
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            # UniqueViolation: the other CREATE DATABASE committed its catalog row while this one ran
            return False
        return True
