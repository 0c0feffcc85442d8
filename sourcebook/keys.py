"""API keys: creation, verification, listing and revocation (the key repository).

A key looks like ``sb_<id>_<secret>``: ``id`` (12 hex digits) finds the row, and only
HMAC-SHA256(pepper, whole key) is stored. Keys are 256-bit random, so a fast keyed hash is enough
(no password-stretching needed), and without the pepper a database dump can't check guesses.
The key decides the caller's tenant, groups and scopes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg.rows import args_row, class_row

from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError

SCOPES = ("ask", "ingest", "admin", "eval", "review")
_KEY_RE = re.compile(r"^sb_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: what every request is filtered by."""

    key_id: str
    tenant_id: str
    groups: tuple[str, ...]
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise SourcebookError(
                ErrorCode.FORBIDDEN,
                f"this API key lacks the {scope!r} scope",
                hint=f"ask an admin for a key with scope {scope!r}",
            )

    def require_any(self, *scopes: str) -> None:
        """Passes with any one of ``scopes``; the refusal names them all."""
        if self.scopes.isdisjoint(scopes):
            named = " or ".join(repr(s) for s in scopes)
            raise SourcebookError(
                ErrorCode.FORBIDDEN,
                f"this API key lacks the {named} scope",
                hint=f"ask an admin for a key with {named}",
            )


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    groups: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A created key; ``token`` is shown once and never stored."""

    key: ApiKey
    token: str


def validate_tenant(tenant_id: str) -> str:
    if not _TENANT_RE.fullmatch(tenant_id):
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"invalid tenant id {tenant_id!r}",
            hint="use 1-63 characters: lower-case letters, digits, '-' and '_', starting with a letter or digit",
        )
    return tenant_id


def validate_groups(groups: Iterable[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(g.strip() for g in groups if g.strip()))
    bad = [g for g in cleaned if not _GROUP_RE.fullmatch(g)]
    if bad:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"invalid group name(s): {', '.join(map(repr, bad))}",
            hint="group names are 1-128 characters: letters, digits and _ . : @ -",
        )
    return cleaned


def validate_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    unknown = [s for s in cleaned if s not in SCOPES]
    if unknown or not cleaned:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"invalid scopes {list(cleaned)!r}",
            hint=f"give one or more of: {', '.join(SCOPES)}",
        )
    return cleaned


def new_token() -> tuple[str, str]:
    """A fresh ``(key_id, token)``."""
    key_id = secrets.token_hex(6)
    return key_id, f"sb_{key_id}_{secrets.token_urlsafe(32)}"


def hash_token(token: str, pepper: str) -> bytes:
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).digest()


def _unauthenticated(reason: str) -> SourcebookError:
    return SourcebookError(
        ErrorCode.UNAUTHENTICATED,
        reason,
        hint="send `Authorization: Bearer <key>` with a valid Sourcebook key",
    )


_KEY_COLUMNS = "id, tenant_id, name, scopes, groups, created_at, expires_at, revoked_at, last_used_at"


def _key_from_row(
    key_id: str,
    tenant_id: str,
    name: str,
    scopes: list[str],
    groups: list[str],
    created_at: dt.datetime,
    expires_at: dt.datetime | None,
    revoked_at: dt.datetime | None,
    last_used_at: dt.datetime | None,
) -> ApiKey:
    return ApiKey(
        key_id,
        tenant_id,
        name,
        tuple(scopes),
        tuple(groups),
        created_at,
        expires_at,
        revoked_at,
        last_used_at,
    )


_as_key = args_row(_key_from_row)


def ensure_tenant(conn: Conn, tenant_id: str, name: str | None = None) -> bool:
    """Create the tenant if it doesn't exist; True when it was created."""
    validate_tenant(tenant_id)
    cur = conn.execute(
        "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
        (tenant_id, name or tenant_id),
    )
    return cur.rowcount == 1


def require_tenant(conn: Conn, tenant_id: str) -> None:
    validate_tenant(tenant_id)
    if conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is None:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"no tenant {tenant_id!r}",
            hint="ingest documents for it first (`sourcebook ingest PATH --tenant ...`)",
        )


def create_key(
    conn: Conn,
    *,
    tenant_id: str,
    name: str,
    scopes: Iterable[str],
    groups: Iterable[str],
    pepper: str,
    expires_at: dt.datetime | None = None,
) -> NewKey:
    """Create a key for an existing tenant; the returned token is the only copy of the secret."""
    validate_tenant(tenant_id)
    key_id, token = new_token()
    try:
        row = (
            conn.cursor(row_factory=_as_key)
            .execute(
                f"INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes, groups, expires_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
                (
                    key_id,
                    tenant_id,
                    name,
                    hash_token(token, pepper),
                    list(validate_scopes(scopes)),
                    list(validate_groups(groups)),
                    expires_at,
                ),
            )
            .fetchone()
        )
    except psycopg.errors.ForeignKeyViolation as exc:
        raise SourcebookError(ErrorCode.NOT_FOUND, f"no tenant {tenant_id!r}", hint="create the tenant first") from exc
    assert row is not None
    return NewKey(row, token)


def list_keys(conn: Conn, *, tenant_id: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
    return (
        conn.cursor(row_factory=_as_key)
        .execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys "
            "WHERE (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s) AND (%(all)s OR revoked_at IS NULL) "
            "ORDER BY tenant_id, created_at",
            {"tenant": tenant_id, "all": include_revoked},
        )
        .fetchall()
    )


def revoke_key(conn: Conn, *, key_id: str) -> ApiKey:
    """Revoke a key now (idempotent: a revoked key keeps its first revocation time)."""
    row = (
        conn.cursor(row_factory=_as_key)
        .execute(
            f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING {_KEY_COLUMNS}",
            (key_id,),
        )
        .fetchone()
    )
    if row is None:
        raise SourcebookError(ErrorCode.NOT_FOUND, f"no API key with id {key_id!r}", hint="see `sourcebook keys list`")
    return row


@dataclass(frozen=True, slots=True)
class _Stored:
    secret_hash: bytes
    tenant_id: str
    groups: list[str]
    scopes: list[str]
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


def verify_key(conn: Conn, *, token: str, pepper: str, now: dt.datetime | None = None) -> Principal:
    """The principal of a valid key, or ``unauthenticated`` (malformed, unknown, revoked, expired)."""
    token = token.strip()
    match = _KEY_RE.fullmatch(token)
    if match is None:
        raise _unauthenticated("malformed API key")
    key_id = match.group(1)
    row = (
        conn.cursor(row_factory=class_row(_Stored))
        .execute(
            "SELECT secret_hash, tenant_id, groups, scopes, revoked_at, expires_at, last_used_at "
            "FROM api_keys WHERE id = %s",
            (key_id,),
        )
        .fetchone()
    )
    # Compare a hash even for unknown ids, so timing doesn't tell which ids exist.
    stored = bytes(row.secret_hash) if row else bytes(32)
    if not hmac.compare_digest(stored, hash_token(token, pepper)) or row is None:
        raise _unauthenticated("unknown API key")
    now = now or dt.datetime.now(dt.UTC)
    if row.revoked_at is not None:
        raise _unauthenticated("this API key was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise _unauthenticated("this API key has expired")
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        conn.execute("UPDATE api_keys SET last_used_at = %s WHERE id = %s", (now, key_id))
    return Principal(key_id, row.tenant_id, tuple(row.groups), frozenset(row.scopes))
