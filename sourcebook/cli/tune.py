"""``sourcebook tune retrieval``: calibrate a tenant's fusion and BM25 settings on its own documents."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sourcebook.cli import console, err_console, state, table
from sourcebook.db import Database, open_database
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

if TYPE_CHECKING:
    from retrieval.calibrate import Calibration

app = typer.Typer(help="Calibrate retrieval on a tenant's own documents.")


def _print(tenant: str, choice: str, figures: dict[str, Any], source: str, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps({"tenant": tenant, "chosen": choice, "question_source": source, **figures}))
        return
    counts = figures.get("questions", {})
    console.print(
        f"[bold]{tenant}[/]: {choice}  [dim](questions from {source}: {counts.get('usable', '?')} usable of "
        f"{counts.get('sampled', '?')} sampled; {figures.get('seconds', '?')} s, "
        f"{figures.get('model_calls', 0)} model calls)[/]"
    )
    measure = figures.get("measure", "MRR@10")  # calibrations stored before nDCG@10 chose by MRR@10
    title = figures.get("metric", "")
    out = table("settings", f"{measure} held out", "unweighted", f"{measure} chosen on", title=title)
    plain = figures.get("held_out_plain", {})
    validated = figures.get("validated")  # calibrations before 12-07 chose on the 70% only
    for name in ("chosen", "default", "bm25", "vector"):
        out.add_row(
            "chosen on 70%" if name == "chosen" and validated else name,
            str(figures["held_out"].get(name, "")),
            str(plain.get(name, "")),
            str(figures["chosen_on"].get(name, "")),
        )
    console.print(out)
    if validated and validated != choice and not figures.get("default_kept"):
        console.print(f"[dim]chosen on 70%: {validated}; chosen again on all the questions: {choice}[/]")
    unweighted = figures.get("unweighted", {}).get("chosen")
    if unweighted and unweighted != choice:
        console.print(f"[dim]unweighted {measure} would have chosen {unweighted}[/]")
    for note in figures.get("notes", []):
        err_console.print(f"[yellow]note[/]: {note}")


def calibrate_here(
    settings: Settings, db: Database, tenant: str, *, model_questions: bool = True, reuse_questions: bool = False
) -> Calibration:
    """Calibrate ``tenant`` in this process (the embedder loaded here) and store the choice;
    ``model_questions=False`` takes the chunks' headings as the questions without asking the model;
    ``reuse_questions`` chooses again on the newest calibration's questions."""
    from ingest.embed import SentenceTransformerEmbedder
    from ingest.tuning import run_calibration
    from sourcebook.models import resolve_model

    embedder = SentenceTransformerEmbedder(
        resolve_model(settings.embedding_model, offline=settings.offline), device=settings.embedding_device
    )
    with err_console.status(f"calibrating {tenant}: writing questions, then searching them"):
        return run_calibration(
            settings, db, embedder, tenant, model_questions=model_questions, reuse_questions=reuse_questions
        )


@app.command("retrieval")
def retrieval(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="the tenant to calibrate")],
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="run it here (default), or queue it for a worker")
    ] = True,
    show: Annotated[bool, typer.Option("--show", help="only print the tenant's stored calibration")] = False,
    reuse_questions: Annotated[
        bool,
        typer.Option(
            "--reuse-questions",
            help="choose again on the questions of the tenant's newest calibration (no model calls): "
            "after an upgrade that changes the grid or the rule, or a re-ingest",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Write questions from a sample of the tenant's chunks (the local model; the chunks' headings when
    it does not answer), and choose the fusion (RRF weights or the convex alpha) and BM25's k1 and b by
    the nDCG@10 of finding each question's chunk; stored with its held-out figures, used by its searches."""
    from ingest.jobs import build_app
    from ingest.tuning import defer_tuning
    from retrieval.tuning import latest

    settings = state(ctx).settings
    with open_database(settings) as db:
        if show:
            with db.pool.connection() as conn:
                stored = latest(conn, tenant)
            if stored is None:
                raise SourcebookError(
                    ErrorCode.NOT_FOUND,
                    f"tenant {tenant!r} has no calibration",
                    hint=f"run `sourcebook tune retrieval --tenant {tenant}`",
                )
            _print(tenant, stored.tuning.label(), dict(stored.figures), stored.question_source, as_json)
            return
        if not wait:
            if reuse_questions:
                raise SourcebookError(
                    ErrorCode.INVALID_REQUEST,
                    "--reuse-questions runs here: it takes seconds, not a worker's time",
                    hint="leave out --no-wait",
                )
            queue = build_app(settings, db.url)

            async def defer() -> int | None:
                async with queue.open_async():
                    return await defer_tuning(queue, tenant)

            job = asyncio.run(defer())
            console.print(f"queued as job {job}" if job else "a calibration of this tenant is already queued")
            return
        done = calibrate_here(settings, db, tenant, reuse_questions=reuse_questions)
        _print(tenant, done.tuning.label(), {**done.figures, "notes": done.notes}, done.question_source, as_json)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tune")
