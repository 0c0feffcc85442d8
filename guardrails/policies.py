"""The tenant policy repository: each ``set`` stores a new version, the newest applies. The caller owns
the transaction.

Version 0 is ``TenantPolicy``'s built-in default and is never stored, so a tenant that never set a
policy costs one indexed lookup that finds nothing. Stored JSON is read back through
``TenantPolicy.from_json``, the same check a new policy passes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from guardrails.policy import TenantPolicy
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored version of a tenant's policy: when and by which API key it was set (None: the CLI)."""

    version: int
    created_at: dt.datetime
    created_by_key: str | None


@dataclass(frozen=True, slots=True)
class _Row:
    version: int
    policy: dict[str, Any]


def _decoded(tenant_id: str, row: _Row) -> TenantPolicy:
    try:
        return TenantPolicy.from_json(row.policy, tenant=tenant_id, version=row.version)
    except SourcebookError as exc:
        # A stored policy that this code no longer accepts is the operator's to fix, not the caller's.
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            f"tenant {tenant_id!r}'s stored policy version {row.version} is no longer valid: {exc.message}",
            hint=f"set it again: `sourcebook policy set --tenant {tenant_id} --file POLICY.json`",
        ) from exc


def load_policy(conn: Conn, tenant_id: str, *, version: int | None = None) -> TenantPolicy:
    """The tenant's newest policy (or ``version``), or the default (version 0) when none is stored.
    A ``version`` that was never stored is ``not_found``."""
    if version == 0:
        return TenantPolicy(tenant=tenant_id)
    row = (
        conn.cursor(row_factory=class_row(_Row))
        .execute(
            "SELECT version, policy FROM tenant_policies "
            "WHERE tenant_id = %(tenant)s AND (%(version)s::integer IS NULL OR version = %(version)s) "
            "ORDER BY version DESC LIMIT 1",
            {"tenant": tenant_id, "version": version},
        )
        .fetchone()
    )
    if row is not None:
        return _decoded(tenant_id, row)
    if version is not None:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"tenant {tenant_id!r} has no policy version {version}",
            hint="list the versions with `GET /v1/policy/versions`",
        )
    return TenantPolicy(tenant=tenant_id)


def save_policy(conn: Conn, *, tenant_id: str, body: Mapping[str, Any], api_key_id: str | None) -> TenantPolicy:
    """Validate ``body`` (``invalid_request`` naming the field) and store it as the tenant's next
    version; returns it. An unknown tenant is ``not_found``."""
    policy = TenantPolicy.from_json(body, tenant=tenant_id)
    # The tenant's row lock serialises its saves, so two at once never compute the same version.
    # NO KEY UPDATE: inserts that merely reference the tenant (their foreign-key check) don't wait.
    if conn.execute("SELECT 1 FROM tenants WHERE id = %s FOR NO KEY UPDATE", (tenant_id,)).fetchone() is None:
        raise SourcebookError(ErrorCode.NOT_FOUND, f"no tenant {tenant_id!r}", hint="create it with a key first")
    try:
        row = conn.execute(
            """
            INSERT INTO tenant_policies (tenant_id, version, policy, created_by_key)
            SELECT %(tenant)s, coalesce(max(version), 0) + 1, %(policy)s, %(key)s
            FROM tenant_policies WHERE tenant_id = %(tenant)s
            RETURNING version
            """,
            {"tenant": tenant_id, "policy": Jsonb(policy.to_json()), "key": api_key_id},
        ).fetchone()
    except psycopg.errors.DataError as exc:
        # jsonb holds no NUL character nor lone surrogate, which JSON itself allows.
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST, "the policy's text holds a NUL character or a lone surrogate"
        ) from exc
    assert row is not None
    assert isinstance(row[0], int)
    return dataclasses.replace(policy, version=row[0])


def policy_versions(conn: Conn, tenant_id: str) -> list[PolicyVersion]:
    """Every stored version of the tenant's policy, newest first (empty: it runs on the default)."""
    return (
        conn.cursor(row_factory=class_row(PolicyVersion))
        .execute(
            "SELECT version, created_at, created_by_key FROM tenant_policies "
            "WHERE tenant_id = %s ORDER BY version DESC",
            (tenant_id,),
        )
        .fetchall()
    )
