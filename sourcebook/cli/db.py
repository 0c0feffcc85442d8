"""``sourcebook db``: migrations and their status."""

from __future__ import annotations

import typer

from sourcebook.cli import console, state, table
from sourcebook.db import locate_database, migrate, prepare_schema
from sourcebook.db.connect import redact_url

app = typer.Typer(help="Database: apply migrations, show their status.", no_args_is_help=True)


@app.command()
def upgrade(ctx: typer.Context) -> None:
    """Apply pending migrations (idempotent; safe to run from several processes at once)."""
    settings = state(ctx).settings
    located = locate_database(settings)
    try:
        prepare_schema(located.url, settings, apply=True)
        console.print(f"database {redact_url(located.url)}: schema up to date")
    finally:
        located.release()


@app.command()
def status(ctx: typer.Context) -> None:
    """List every migration and when it was applied."""
    settings = state(ctx).settings
    located = locate_database(settings)
    try:
        states = migrate.status(located.url)
    finally:
        located.release()
    out = table("migration", "applied at (UTC)", title=f"database {redact_url(located.url)}")
    for item in states:
        when = item.applied_at.strftime("%Y-%m-%d %H:%M:%S") if item.applied_at else "[yellow]pending[/]"
        out.add_row(item.id, when)
    console.print(out)
    pending = sum(1 for item in states if item.applied_at is None)
    if pending:
        console.print(f"{pending} pending: run `sourcebook db upgrade`")
