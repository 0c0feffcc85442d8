"""The database: where it is (embedded or ``DATABASE_URL``), its checks, migrations and pool.

``open_database(settings)`` is the one way in: it starts or joins the embedded server when no URL is
configured, refuses a server without pgvector >= 0.8, applies migrations on the embedded server
(elsewhere it asks for ``sourcebook db upgrade``), opens a psycopg pool with pgvector's types
registered, and registers the embedding space of the configured model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from sourcebook.db import migrate
from sourcebook.db.connect import Conn, check_pgvector, connect, ensure_database, redact_url
from sourcebook.db.embedded import DATABASE_NAME, EmbeddedPostgres, start_embedded
from sourcebook.db.probe import probe_once
from sourcebook.db.spaces import EmbeddingSpace, ensure_space
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

__all__ = ["Conn", "Database", "locate_database", "open_database"]


@dataclass(slots=True)
class Located:
    """A reachable database URL and, for the embedded server, the handle that keeps it running."""

    url: str
    embedded: EmbeddedPostgres | None

    def release(self) -> None:
        if self.embedded is not None:
            self.embedded.release()


@dataclass(slots=True)
class Database:
    """An open pool on a checked, migrated database."""

    url: str
    pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]]
    pgvector_version: str
    space: EmbeddingSpace
    embedded: EmbeddedPostgres | None

    @property
    def display_url(self) -> str:
        return redact_url(self.url)


def locate_database(settings: Settings) -> Located:
    """The configured URL, or the embedded server's (started now; on this machine's first start its
    vector operations are probed, and the database is created on first use)."""
    if settings.database_url is not None:
        return Located(settings.database_url.get_secret_value(), None)
    server = start_embedded(settings.pgdata)
    try:
        probe_once(server.admin_url, server.pgdata)
        ensure_database(server.admin_url, DATABASE_NAME, timeout_s=settings.db_connect_timeout_s)
    except BaseException:
        server.release()
        raise
    return Located(server.url(DATABASE_NAME), server)


def prepare_schema(url: str, settings: Settings, *, apply: bool) -> str:
    """Check pgvector, then migrate (``apply``) or refuse a schema that is behind; returns pgvector's version."""
    with connect(url, timeout_s=settings.db_connect_timeout_s) as conn:
        version = check_pgvector(conn)
    if apply:
        migrate.upgrade(url)
        with connect(url, timeout_s=settings.db_connect_timeout_s) as conn:
            version = check_pgvector(conn)  # the upgrade may have moved pgvector to the server's version
    else:
        waiting = migrate.pending(url)
        if waiting:
            raise SourcebookError(
                ErrorCode.MIGRATION_FAILED,
                f"the database schema is behind: {len(waiting)} migration(s) pending ({', '.join(waiting)})",
                hint="run `sourcebook db upgrade`",
            )
    return version


def _configure(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    register_vector(conn)


def open_pool(url: str, settings: Settings) -> ConnectionPool[psycopg.Connection[tuple[object, ...]]]:
    pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
        url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        configure=_configure,
        # A crashed backend makes the server drop every connection: checked ones are replaced on take.
        check=ConnectionPool.check_connection,
        kwargs={"connect_timeout": max(1, round(settings.db_connect_timeout_s))},
        open=False,
        name="sourcebook",
    )
    try:
        pool.open(wait=True, timeout=settings.db_connect_timeout_s)
    except PoolTimeout as exc:
        pool.close()
        raise SourcebookError(
            ErrorCode.DATABASE_UNAVAILABLE, f"the connection pool to {redact_url(url)} did not fill in time"
        ) from exc
    return pool


@contextmanager
def open_database(settings: Settings) -> Iterator[Database]:
    """Locate, check, migrate (embedded) and pool the database for the duration of the block."""
    located = locate_database(settings)
    try:
        version = prepare_schema(located.url, settings, apply=located.embedded is not None)
        pool = open_pool(located.url, settings)
        try:
            with pool.connection() as conn:
                space = ensure_space(conn, model=settings.embedding_model, dim=settings.embedding_dim)
            yield Database(located.url, pool, version, space, located.embedded)
        finally:
            pool.close()
    finally:
        located.release()
