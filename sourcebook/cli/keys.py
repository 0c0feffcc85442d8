"""``sourcebook keys``: create, list and revoke API keys."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from sourcebook import keys as key_repo
from sourcebook.cli import console, err_console, split_csv, state, table
from sourcebook.db import open_database

app = typer.Typer(help="API keys: each decides its caller's tenant, groups and scopes.", no_args_is_help=True)


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@app.command()
def create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to (created if new).")],
    name: Annotated[str, typer.Option(help="A label for people: who or what uses the key.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: ask, ingest, admin, eval, review.")] = "ask",
    groups: Annotated[str, typer.Option(help="Comma-separated ACL groups the caller belongs to.")] = "",
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after this many days.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    settings = state(ctx).settings
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days) if expires_in_days else None
    with open_database(settings) as db, db.pool.connection() as conn:
        created_tenant = key_repo.ensure_tenant(conn, tenant)
        new = key_repo.create_key(
            conn,
            tenant_id=tenant,
            name=name,
            scopes=split_csv(scopes),
            groups=split_csv(groups),
            pepper=settings.key_pepper.get_secret_value(),
            expires_at=expires,
        )
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "id": new.key.id,
                    "key": new.token,
                    "tenant": tenant,
                    "scopes": list(new.key.scopes),
                    "groups": list(new.key.groups),
                }
            )
        )
        return
    if created_tenant:
        err_console.print(f"created tenant {tenant!r}")
    err_console.print(
        f"key {new.key.id} for tenant {tenant!r}, scopes {', '.join(new.key.scopes)}, "
        f"groups {', '.join(new.key.groups) or '(none)'}. Store it now; it is not shown again:"
    )
    console.print(new.token, highlight=False, soft_wrap=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List keys (never their secrets)."""
    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        rows = key_repo.list_keys(conn, tenant_id=tenant, include_revoked=include_revoked)
    out = table("id", "tenant", "name", "scopes", "groups", "created", "expires", "last used", "revoked")
    for k in rows:
        out.add_row(
            k.id,
            k.tenant_id,
            k.name,
            ",".join(k.scopes),
            ",".join(k.groups),
            _when(k.created_at),
            _when(k.expires_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
    console.print(out)


@app.command()
def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
    """Revoke a key at once; requests with it then get 401."""
    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        key = key_repo.revoke_key(conn, key_id=key_id)
    console.print(f"revoked {key.id} ({key.name}, tenant {key.tenant_id}) at {_when(key.revoked_at)}", markup=False)
