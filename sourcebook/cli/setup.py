"""``sourcebook doctor`` and ``sourcebook quickstart``."""

from __future__ import annotations

from pathlib import Path

import typer

from sourcebook import keys as key_repo
from sourcebook.cli import console, err_console, state, table
from sourcebook.cli.ingest import ingest_paths, print_summary
from sourcebook.cli.search import search
from sourcebook.db import open_database
from sourcebook.doctor import Check, run_checks
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

_MARKS = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}
QUICKSTART_TENANT = "demo"
QUICKSTART_GROUPS = ("everyone",)
QUICKSTART_QUESTION = "What is the nightly hotel cap under the current travel policy?"
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def print_checks(checks: list[Check]) -> bool:
    """Print the checks as a table; True when none failed."""
    out = table("check", "status", "detail", "how to fix", title="sourcebook doctor")
    for check in checks:
        out.add_row(check.name, _MARKS[check.status], check.detail, check.fix)
    console.print(out)
    return all(check.status != "fail" for check in checks)


def doctor(ctx: typer.Context) -> None:
    """Check Python, torch, the database, pgvector, migrations, models and the model server."""
    if not print_checks(run_checks(state(ctx).settings)):
        raise typer.Exit(1)


def development_key(settings: Settings) -> str:
    """The quickstart's key: reused from the data dir while it stays valid, else created (0600 file)."""
    path: Path = settings.data_dir / "quickstart.key"
    pepper = settings.key_pepper.get_secret_value()
    with open_database(settings) as db, db.pool.connection() as conn:
        key_repo.ensure_tenant(conn, QUICKSTART_TENANT, "Demo company")
        if path.is_file():
            try:
                key_repo.verify_key(conn, token=path.read_text(), pepper=pepper)
                return path.read_text().strip()
            except SourcebookError:
                err_console.print(f"the saved development key in {path} is no longer valid; making a new one")
        new = key_repo.create_key(
            conn,
            tenant_id=QUICKSTART_TENANT,
            name="quickstart (development)",
            scopes=key_repo.SCOPES,
            groups=QUICKSTART_GROUPS,
            pepper=pepper,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(new.token + "\n")
    return new.token


def quickstart(ctx: typer.Context) -> None:
    """Run the embedded set-up end to end: database, migrations, a development key, doctor, the sample
    documents ingested, and a search over them."""
    settings = state(ctx).settings
    if settings.environment != "development":
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            "quickstart is for development set-ups only",
            hint="unset SOURCEBOOK_ENVIRONMENT or set it to development",
        )
    token = development_key(settings)
    console.print(
        f"[bold]tenant[/] {QUICKSTART_TENANT}, groups {', '.join(QUICKSTART_GROUPS)}; "
        f"development key (saved in {settings.data_dir / 'quickstart.key'}):"
    )
    console.print(token, highlight=False, soft_wrap=True)
    if not print_checks(run_checks(settings)):
        raise typer.Exit(1)
    console.rule(f"ingesting the sample documents ({SAMPLES})")
    results = ingest_paths(settings, [SAMPLES], tenant=QUICKSTART_TENANT, groups=[], public=False, sync=True, wait=True)
    if print_summary(results):
        raise typer.Exit(1)
    console.rule(f"searching as a member of {', '.join(QUICKSTART_GROUPS)}: {QUICKSTART_QUESTION}")
    search(
        ctx,
        QUICKSTART_QUESTION,
        tenant=QUICKSTART_TENANT,
        groups=",".join(QUICKSTART_GROUPS),
        mode="hybrid",
        top_k=3,
        explain=True,
        as_json=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(doctor)
    app.command()(quickstart)
