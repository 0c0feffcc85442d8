"""``sourcebook reranker``: train a tenant's cross-encoder on its own documents, show it, switch it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sourcebook.cli import console, err_console, stage_progress, state, table
from sourcebook.db import open_database
from sourcebook.errors import ErrorCode, SourcebookError

if TYPE_CHECKING:
    from retrieval.rerank import TrainedReranker
    from retrieval.rerank_train import Group

app = typer.Typer(help="Train, show and switch a tenant's own reranker.")
GENERAL_SETS = ("halueval", "none")
BENCHMARKED_HALUEVAL = 1200  # the retrieval benchmarks' HaluEval tenant holds its first 1,200 items


def _general(name: str, count: int, cache: Path, negatives: int) -> list[Group]:
    """HaluEval-QA's last ``count`` items as general groups, never its first 1,200 (the benchmarks')."""
    from evals.datasets import fetch_halueval
    from retrieval.rerank_train import general_groups

    if name == "none" or count == 0:
        return []
    try:
        rows = fetch_halueval(cache)
        available = max(len(rows) - BENCHMARKED_HALUEVAL, 0)
        pairs = [(str(r["question"]), str(r["knowledge"])) for r in rows[len(rows) - min(count, available) :]]
    except SourcebookError as exc:
        raise SourcebookError(
            exc.code, f"the general training set could not be read: {exc.message}", hint="pass --general none"
        ) from exc
    except KeyError as exc:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"the HaluEval-QA file in {cache} has an item without {exc}",
            hint="delete it so that it is fetched again, or pass --general none",
        ) from exc
    if count > available:
        err_console.print(
            f"[yellow]note[/]: {available} general groups, not {count}: HaluEval's first 1,200 are the benchmarks'"
        )
    return general_groups(pairs, negatives=negatives, name="halueval-qa")


def _print(found: TrainedReranker, as_json: bool) -> None:
    figures: dict[str, Any] = dict(found.figures)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "tenant": found.tenant_id,
                    "created_at": found.created_at.isoformat(),
                    "model_path": found.model_path,
                    "enabled": found.enabled,
                    "reason": found.reason,
                    **figures,
                }
            )
        )
        return
    held = figures.get("held_out", {})
    training = figures.get("training", {})
    state_text = "[green]on[/]" if found.enabled else "[yellow]off[/]"
    console.print(f"[bold]{found.tenant_id}[/]: reranker {state_text} — {found.reason}")
    out = table("", "MRR@10 held out", "unweighted", title=held.get("metric", ""))
    plain = held.get("plain", {})
    for name in ("fusion", "reranked"):
        out.add_row(name, str(held.get(name, "")), str(plain.get(name, "")))
    console.print(out)
    groups = training.get("groups", {})
    console.print(
        f"[dim]{held.get('held_out', '?')} held-out questions: {held.get('better', '?')} better, "
        f"{held.get('worse', '?')} worse; gain 90% interval {held.get('gain_interval_90')}; "
        f"rerank p50 {held.get('rerank_ms_p50', '?')} ms. Trained on {groups.get('tenant', '?')} tenant and "
        f"{groups.get('general', '?')} general groups, {training.get('steps', '?')} steps in "
        f"{training.get('seconds', '?')} s on {training.get('device', '?')}; calibration "
        f"{figures.get('calibration', {}).get('chosen', '?')}. Model: {found.model_path}[/]"
    )


@app.command("train")
def train(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="the tenant whose reranker to train")],
    general: Annotated[
        str, typer.Option(help="general training groups added to the tenant's: halueval (registry package) or none")
    ] = "halueval",
    general_count: Annotated[int, typer.Option(min=0, help="how many general groups")] = 1000,
    epochs: Annotated[int, typer.Option(min=1, max=20)] = 2,
    cache: Annotated[
        Path | None, typer.Option(help="where the general set is kept (default: <data dir>/datasets)")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Fine-tune a cross-encoder (SOURCEBOOK_RERANKER_BASE_MODEL: the bundled MiniLM) on the questions
    of the tenant's newest calibration (hard negatives from both arms) plus general groups, judge it
    against the tuned fusion on the held-out questions, and switch it on only if it gains enough."""
    from ingest.embed import SentenceTransformerEmbedder
    from ingest.tuning import calibration_inputs
    from retrieval.rerank import latest_trained, store_trained
    from retrieval.rerank_train import TrainingInputs, TrainingOptions, train_tenant
    from sourcebook.models import resolve_model

    if general not in GENERAL_SETS:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"--general must be one of {', '.join(GENERAL_SETS)}")
    settings = state(ctx).settings
    options = TrainingOptions(
        epochs=epochs,
        max_length=settings.rerank_max_length,
        candidates=settings.rerank_candidates,
        min_gain=settings.reranker_min_gain,
        seed=seed,
        device=settings.embedding_device,
    )
    datasets = cache or settings.data_dir / "datasets"
    embedder = SentenceTransformerEmbedder(
        resolve_model(settings.embedding_model, offline=settings.offline), device=settings.embedding_device
    )
    with open_database(settings) as db, stage_progress() as report:
        inputs = TrainingInputs(
            calibration_inputs(settings, db, embedder),
            resolve_model(settings.reranker_base_model, offline=settings.offline),
        )
        done = train_tenant(
            inputs,
            tenant_id=tenant,
            out_root=settings.data_dir / "rerankers",
            general=lambda: _general(general, general_count, datasets, options.negatives),
            options=options,
            progress=report,
        )
        with db.pool.connection() as conn, conn.transaction():
            store_trained(
                conn,
                tenant_id=tenant,
                tuning_id=done.tuning_id,
                model_path=str(done.path),  # absolute
                figures=done.figures,
                enabled=done.enabled,
                reason=done.reason,
            )
            stored = latest_trained(conn, tenant)
    if stored is not None:
        _print(stored, as_json)


def _none_trained(tenant: str) -> SourcebookError:
    return SourcebookError(
        ErrorCode.NOT_FOUND,
        f"tenant {tenant!r} has no trained reranker",
        hint=f"run `sourcebook reranker train --tenant {tenant}`",
    )


def _switch(ctx: typer.Context, tenant: str, *, enabled: bool) -> None:
    from retrieval.rerank import latest_trained, set_enabled

    settings = state(ctx).settings
    reason = f"switched {'on' if enabled else 'off'} by hand on {dt.date.today():%Y-%m-%d}"
    with open_database(settings) as db, db.pool.connection() as conn, conn.transaction():
        current = latest_trained(conn, tenant)
        if current is None:
            raise _none_trained(tenant)
        if enabled and not Path(current.model_path).is_dir():
            raise SourcebookError(
                ErrorCode.NOT_FOUND,
                f"the model of {current.name} is not on this machine ({current.model_path})",
                hint=f"train again: `sourcebook reranker train --tenant {tenant}`",
            )
        set_enabled(conn, tenant, enabled=enabled, reason=reason)
    console.print(f"{tenant}: reranker {'on' if enabled else 'off'} ({current.model_path})")


@app.command("show")
def show(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the tenant's newest trained reranker: on or off, why, and its held-out figures."""
    from retrieval.rerank import latest_trained

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        found = latest_trained(conn, tenant)
    if found is None:
        raise _none_trained(tenant)
    _print(found, as_json)


@app.command("on")
def switch_on(ctx: typer.Context, tenant: Annotated[str, typer.Option("--tenant", "-t")]) -> None:
    """Use the tenant's newest trained reranker for its searches, whatever its held-out figures."""
    _switch(ctx, tenant, enabled=True)


@app.command("off")
def switch_off(ctx: typer.Context, tenant: Annotated[str, typer.Option("--tenant", "-t")]) -> None:
    """Search the tenant without its trained reranker."""
    _switch(ctx, tenant, enabled=False)
