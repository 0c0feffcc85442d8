"""The per-tenant glossary the rules rewriter expands queries with (``glossary`` table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg_pool import ConnectionPool

from retrieval.rewrite import GlossaryLoader
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError


def set_term(conn: Conn, *, tenant_id: str, term: str, expansions: Sequence[str]) -> None:
    term = term.strip()
    cleaned = [e.strip() for e in expansions if e.strip()]
    if not term or not cleaned:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "a glossary entry needs a term and at least one expansion")
    conn.execute(
        "INSERT INTO glossary (tenant_id, term, expansions) VALUES (%s, %s, %s) "
        "ON CONFLICT (tenant_id, term) DO UPDATE SET expansions = EXCLUDED.expansions",
        (tenant_id, term, cleaned),
    )


def remove_term(conn: Conn, *, tenant_id: str, term: str) -> bool:
    return conn.execute("DELETE FROM glossary WHERE tenant_id = %s AND term = %s", (tenant_id, term)).rowcount == 1


def terms(conn: Conn, *, tenant_id: str) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT term, expansions FROM glossary WHERE tenant_id = %s ORDER BY term", (tenant_id,)
    ).fetchall()
    return {str(term): list(expansions) for term, expansions in rows}  # type: ignore[call-overload]


def loader(pool: ConnectionPool[Conn]) -> GlossaryLoader:
    def load(tenant_id: str) -> Mapping[str, Sequence[str]]:
        with pool.connection() as conn:
            return terms(conn, tenant_id=tenant_id)

    return load
