"""The ``sourcebook`` command line. Settings and telemetry are built once here and passed down.

Heavy libraries (torch, sentence-transformers) are imported inside the commands that need them, so
``sourcebook --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.style import StyleType
from rich.table import Table
from rich.text import Text

from sourcebook.errors import SourcebookError
from sourcebook.settings import Settings, load_settings
from sourcebook.telemetry import Telemetry, setup_telemetry

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="sourcebook",
    help="Sourcebook: answers from your documents, with citations, for the people allowed to read them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass(slots=True)
class CliState:
    settings: Settings
    telemetry: Telemetry


@app.callback()
def _root(ctx: typer.Context) -> None:
    settings = load_settings()
    settings.apply_library_env()
    telemetry = setup_telemetry(settings)
    ctx.obj = CliState(settings, telemetry)
    ctx.call_on_close(telemetry.shutdown)


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def split_csv(value: str) -> list[str]:
    """A comma-separated option (``--groups hr,finance``) as its non-empty, stripped parts."""
    return [part.strip() for part in value.split(",") if part.strip()]


class PlainTable(Table):
    """A table whose text cells are shown as they are, never read as markup: titles, file names, questions
    and answers hold brackets that rich would take for tags (``[draft]`` vanishes, ``[/usr/bin]`` raises).
    A cell meant to be styled is given as a ``Text``."""

    def add_row(
        self, *renderables: RenderableType | None, style: StyleType | None = None, end_section: bool = False
    ) -> None:
        cells = [Text(cell) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, style=style, end_section=end_section)


def table(*columns: str, title: str | None = None) -> PlainTable:
    """A table whose cells wrap instead of being cut, so ids and keys stay whole in narrow terminals."""
    out = PlainTable(title=title)
    for column in columns:
        out.add_column(column, overflow="fold")
    return out


@contextmanager
def stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(stage, done, total)`` callback that shows one bar per stage on stderr."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield report


def _register() -> None:
    from sourcebook.cli import (
        answer,
        db,
        evals,
        guard,
        ingest,
        keys,
        policy,
        reranker,
        reviews,
        search,
        setup,
        tune,
        usage,
    )

    app.add_typer(db.app, name="db")
    app.add_typer(keys.app, name="keys")
    app.add_typer(evals.app, name="eval")
    app.add_typer(guard.app, name="guard")
    app.add_typer(policy.app, name="policy")
    app.add_typer(reviews.app, name="reviews")
    app.add_typer(reranker.app, name="reranker")
    setup.register(app)
    ingest.register(app)
    search.register(app)
    answer.register(app)
    usage.register(app)
    tune.register(app)


_register()


def main() -> None:
    """Console-script entry: a ``SourcebookError``, or a lost or refused database connection, becomes a
    short message with its fix, exit code 1."""
    try:
        app()
    except SourcebookError as exc:
        _print_error(exc)
        raise SystemExit(1) from None
    except Exception as exc:
        from sourcebook.db.connect import lost_connection

        error = lost_connection(exc)
        if error is None:
            raise
        _print_error(error)
        raise SystemExit(1) from None


def _print_error(exc: SourcebookError) -> None:
    err_console.print(f"[bold red]error[/] [dim]({exc.code.slug})[/]: {escape(exc.message)}", highlight=False)
    if exc.hint:
        err_console.print(f"[bold]fix[/]: {escape(exc.hint)}", highlight=False)
