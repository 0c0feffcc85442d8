"""Versioned SQL migrations under ``migrations/``, applied and recorded by yoyo-migrations.

Files are ``NNNN_name.sql`` (with an optional ``NNNN_name.rollback.sql``); yoyo applies each in a
transaction, records it in ``_yoyo_migration`` and holds a lock so that concurrent upgrades from
several processes apply each migration once.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from sourcebook.db.connect import connect, update_pgvector
from sourcebook.errors import ErrorCode, SourcebookError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@dataclass(frozen=True, slots=True)
class MigrationState:
    id: str
    applied_at: dt.datetime | None


def yoyo_url(url: str) -> str:
    """yoyo picks its driver from the scheme: ``postgresql+psycopg`` is psycopg 3."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise SourcebookError(ErrorCode.CONFIG_INVALID, "migrations need a postgresql:// URL")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def _backend_and_migrations(url: str, directory: Path) -> tuple[Any, Any]:
    from yoyo import get_backend, read_migrations

    if not directory.is_dir():
        raise SourcebookError(
            ErrorCode.MIGRATION_FAILED,
            f"no migrations directory at {directory}",
            hint="run Sourcebook from its source tree (pip install -e .)",
        )
    try:
        backend = get_backend(yoyo_url(url))
    except psycopg.OperationalError as exc:
        raise SourcebookError(ErrorCode.DATABASE_UNAVAILABLE, f"cannot connect for migrations: {exc}") from exc
    return backend, read_migrations(str(directory))


def upgrade(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration, in order, then bring the ``vector`` extension to the server's
    pgvector (``ALTER EXTENSION vector UPDATE``); returns the migration ids applied (empty when up to date)."""
    backend, migrations = _backend_and_migrations(url, directory)
    try:
        with backend.lock():
            pending = backend.to_apply(migrations)
            ids = [m.id for m in pending]
            backend.apply_migrations(pending)
    except psycopg.Error as exc:
        raise SourcebookError(
            ErrorCode.MIGRATION_FAILED,
            f"a migration failed and was rolled back: {str(exc).strip()}",
            hint="fix the migration or the database, then run `sourcebook db upgrade` again",
        ) from exc
    finally:
        backend.connection.close()
    try:
        with connect(url, timeout_s=10) as conn:
            moved = update_pgvector(conn)
    except psycopg.Error as exc:
        raise SourcebookError(
            ErrorCode.MIGRATION_FAILED,
            f"the vector extension could not be brought to the server's pgvector: {str(exc).strip()}",
            hint="run ALTER EXTENSION vector UPDATE as the extension's owner (or a superuser)",
        ) from exc
    if moved:
        log.warning("pgvector updated", extra={"from": moved[0], "to": moved[1]})
    return ids


def status(url: str, directory: Path = MIGRATIONS_DIR) -> list[MigrationState]:
    """Every known migration with the time it was applied (None when pending)."""
    backend, migrations = _backend_and_migrations(url, directory)
    try:
        backend.ensure_internal_schema_updated()
        rows = backend.execute(f"SELECT migration_id, applied_at_utc FROM {backend.migration_table_quoted}").fetchall()
    finally:
        backend.connection.close()
    applied = {str(mid): at.replace(tzinfo=dt.UTC) for mid, at in rows}
    return [MigrationState(m.id, applied.get(m.id)) for m in migrations]


def pending(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    return [m.id for m in status(url, directory) if m.applied_at is None]
