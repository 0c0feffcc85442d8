"""``sourcebook policy``: show and set a tenant's guardrail policy (each set stores a new version)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from sourcebook import keys as key_repo
from sourcebook.cli import console, state, table
from sourcebook.db import open_database
from sourcebook.errors import ErrorCode, SourcebookError

app = typer.Typer(help="Each tenant's guardrail policy, versioned.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="The tenant.")]


def _read_json(source: str) -> dict[str, Any]:
    """The JSON object in the file ``source`` ("-": standard input)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise SourcebookError(ErrorCode.NOT_FOUND, f"can't read {source}: {exc.strerror}") from exc
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST, f"{source} is not valid JSON: {exc.msg} (line {exc.lineno})"
        ) from exc
    if not isinstance(body, dict):
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"{source} must hold a JSON object of policy fields")
    return body


@app.command()
def show(
    ctx: typer.Context,
    tenant: Tenant,
    version: Annotated[int | None, typer.Option(min=0, help="An earlier version (default: the newest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the body `policy set` takes).")] = False,
) -> None:
    """Print the policy a tenant's answers are checked under (version 0: the built-in default)."""
    from guardrails.policies import load_policy

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        key_repo.require_tenant(conn, tenant)
        policy = load_policy(conn, tenant, version=version)
    settings = policy.to_json()
    if as_json:
        console.print_json(json.dumps({"tenant": tenant, "version": policy.version, "policy": settings}))
        return
    label = "the built-in default" if policy.version == 0 else f"version {policy.version}"
    console.print(f"[bold]policy of {tenant}[/]: {label}", highlight=False)
    out = table("setting", "value")
    for name, value in settings.items():
        if name != "denied_topics":
            out.add_row(name, json.dumps(value))
    for topic in settings["denied_topics"]:
        words = ", ".join(topic["keywords"]) or "-"
        examples = len(topic["examples"])
        what = f"{topic['action']}; keywords: {words}; {examples} example question(s)"
        out.add_row(f"denied topic {topic['name']!r}", what)
    console.print(out)


@app.command("set")
def set_(
    ctx: typer.Context,
    tenant: Tenant,
    file: Annotated[str, typer.Option("--file", "-f", help="A JSON file of policy fields, or - for stdin.")],
) -> None:
    """Store the policy in FILE as the tenant's next version (fields left out take their defaults)."""
    from guardrails.policies import save_policy

    body = _read_json(file)
    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        policy = save_policy(conn, tenant_id=tenant, body=body, api_key_id=None)
    console.print(f"tenant {tenant}: policy version {policy.version}", highlight=False)


@app.command()
def versions(ctx: typer.Context, tenant: Tenant) -> None:
    """List the tenant's stored policy versions, newest first, with who set each (a key id, or the CLI)."""
    from guardrails.policies import policy_versions

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        key_repo.require_tenant(conn, tenant)
        rows = policy_versions(conn, tenant)
    out = table("version", "set at", "by key", title=f"policy versions of {tenant}")
    for row in rows:
        out.add_row(str(row.version), row.created_at.strftime("%Y-%m-%d %H:%M"), row.created_by_key or "(CLI)")
    console.print(out)
