"""``sourcebook eval``: the ML team's suites: retrieval, and answers over golden sets stored in
PostgreSQL (built, imported and exported by ``sourcebook.cli.eval_sets``; run, compared and gated by
``sourcebook.cli.eval_answers``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sourcebook.cli import console, err_console, split_csv, stage_progress, state, table
from sourcebook.cli.eval_answers import EVAL_GROUP
from sourcebook.db import open_database

app = typer.Typer(help="Evaluation suites, compared with a stored baseline (a regression exits 1).")


@app.command("retrieval")
def retrieval(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Option(help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv")],
    mode: Annotated[str, typer.Option(help="comma-separated: bm25, vector, hybrid, rank_bm25")] = "bm25,vector,hybrid",
    out: Annotated[Path | None, typer.Option(help="where results go (default: DATA_DIR/evals/NAME)")] = None,
    baseline: Annotated[Path | None, typer.Option(help="baseline metrics JSON to compare with")] = None,
    update_baseline: Annotated[bool, typer.Option("--update-baseline", help="write this run as the baseline")] = False,
    max_queries: Annotated[int | None, typer.Option(min=1, help="evaluate only the first N queries")] = None,
) -> None:
    """Ingest a BEIR set into its own tenant, run every query through the retrieval pipeline, and report
    nDCG@10, Recall@10/100 and MRR@10 per mode."""
    from evals import retrieval as runner
    from evals.datasets import load_beir
    from evals.metrics import METRICS

    settings = state(ctx).settings
    data = load_beir(dataset)
    target = out or settings.data_dir / "evals" / data.name
    with open_database(settings) as db, stage_progress() as report:
        result = runner.run(
            settings=settings,
            db=db,
            dataset=data,
            modes=split_csv(mode),
            out=target,
            baseline_path=baseline,
            update_baseline=update_baseline,
            tolerance=settings.eval_regression_tolerance,
            max_queries=max_queries,
            progress=report,
        )
    summary = result.summary
    out_table = table("mode", *METRICS, "p50 ms", "p95 ms", title=f"{data.name}: {summary['queries']} queries")
    for name, values in summary["modes"].items():
        metrics, latency = values["metrics"], values["latency_ms"]
        out_table.add_row(
            name, *(f"{metrics[m]:.4f}" for m in METRICS), f"{latency['p50']:.1f}", f"{latency['p95']:.1f}"
        )
    console.print(out_table)
    if "bm25_matches_rank_bm25_top10" in summary:
        console.print(f"bm25 top-10 equal to rank_bm25's: {summary['bm25_matches_rank_bm25_top10']} queries")
    console.print(f"results: {target} (summary.json, per_query-*.json, report.md, report.html)")
    if result.regressions:
        for line in result.regressions:
            err_console.print(f"[bold red]regression[/]: {line}", highlight=False)
        raise typer.Exit(1)
    if baseline is not None:
        err_console.print("[green]no regression against the baseline[/]" if baseline.is_file() else "")
    err_console.print(json.dumps({"ingested_now": summary["ingested_now"], "ingest_s": summary["ingest_s"]}))


@app.command("dev-sets")
def dev_sets(
    out: Annotated[Path, typer.Option(help="the folder the sets and their corpora go to")],
    cache: Annotated[Path, typer.Option(help="downloads go here (once)")] = Path(".cache/eval-sources"),
    seed: Annotated[int, typer.Option(help="the sample's seed")] = 7,
) -> None:
    """Build the answer dev sets from data that ships offline: the Python FAQ (answerable, and unanswerable
    from pages left out), HaluEval-QA and SQuAD counterfactual (swapped values), and questions of each
    source the counterfactual corpus can't answer. SQuAD dev is skipped, with a warning, where it can't be had."""
    from evals.goldens import build_dev_sets, read_set

    folders, missing = build_dev_sets(out, cache, seed=seed)
    for folder in folders:
        golden = read_set(folder)
        console.print(f"{golden.name}: {len(golden.items)} items over corpus {golden.corpus} ({folder})")
    for line in missing:
        console.print(f"[yellow]not built[/yellow]: {escape(line)}")


@app.command("answers")
def answers(
    ctx: typer.Context,
    golden_set: Annotated[str, typer.Option("--set", help="a stored set's name, or a set folder (imported first)")],
    tenant: Annotated[str | None, typer.Option(help="ask this tenant's documents (default: the set's corpus)")] = None,
    groups: Annotated[str, typer.Option(help="comma-separated groups the questions are asked with")] = EVAL_GROUP,
    prompt_version: Annotated[str | None, typer.Option(help="answer prompt version (default: the setting)")] = None,
    model: Annotated[str | None, typer.Option(help="served model name (default: the setting)")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="a seeded sample of N items")] = None,
    seed: Annotated[int, typer.Option(help="the sample's seed")] = 1,
    temperature: Annotated[float | None, typer.Option(min=0, max=2, help="sampling temperature")] = None,
    max_passages: Annotated[int | None, typer.Option(min=1, max=50, help="passages shown to the model")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="questions in flight at once")] = 1,
    resume: Annotated[int | None, typer.Option(help="finish the interrupted run RUN (its settings are kept)")] = None,
    ab: Annotated[str | None, typer.Option(help="A/B: two runs, e.g. prompt=v2,v7 or model=a,b, then compared")] = None,
    update_baseline: Annotated[
        bool, typer.Option("--update-baseline", help="make this run the set's baseline")
    ] = False,
    tolerance: Annotated[
        float, typer.Option(min=0, max=1, help="a metric may fall this much below the baseline")
    ] = 0.02,
    out: Annotated[Path | None, typer.Option(help="report folder (default: DATA_DIR/evals/answers/SET-runN)")] = None,
) -> None:
    """Ask every item of a golden set through the answer service and score the answers without a judge
    (exact match, token F1, contains the reference, citation precision and recall, abstention precision
    and recall, guards' flags, latency, and correct / false abstention / from memory / right abstention);
    the run is stored in eval_runs and gated against the set's baseline run (a regression exits 1; a run
    some of whose answers no model server gave exits 3 and is never made a baseline)."""
    from evals.store import RunConfig
    from sourcebook.cli import eval_answers as runs

    settings = state(ctx).settings
    ask = runs.Ask(golden_set, tenant, tuple(split_csv(groups)), limit, seed, temperature, concurrency, tolerance, out)
    stored = runs.resolve_set(settings, golden_set)
    asked = tenant if resume is not None else runs.tenant_for(settings, stored, tenant)
    base = RunConfig(asked or "", prompt_version, model, temperature, max_passages, limit, seed)
    if ab is not None:
        runs.run_ab(settings, ask, stored, base, ab)
        return
    outcome = runs.run_once(settings, ask, stored, base, resume)
    runs.print_run(outcome, f"run {outcome.run_id}: {stored.golden.name}")
    if update_baseline and outcome.extractive:
        err_console.print(f"[bold red]run {outcome.run_id} is not made the baseline[/]: some answers were extractive")
    elif update_baseline:
        runs.make_baseline(settings, stored.id, outcome.run_id)
        err_console.print(f"[green]run {outcome.run_id} is now the baseline of {stored.golden.name}[/]")
    elif outcome.regressions:
        for line in outcome.regressions:
            err_console.print(f"[bold red]regression[/] against run {outcome.baseline_id}: {line}", highlight=False)
        raise typer.Exit(1)
    elif outcome.baseline_id is not None:
        err_console.print(f"[green]no regression against the baseline run {outcome.baseline_id}[/]")
    if outcome.extractive:
        raise typer.Exit(runs.EXIT_EXTRACTIVE)


@app.command("compare")
def compare(
    ctx: typer.Context,
    run_a: Annotated[int, typer.Argument(help="the first run (the reference)")],
    run_b: Annotated[int, typer.Argument(help="the second run")],
    top: Annotated[int, typer.Option(min=0, help="show the N items that changed most")] = 5,
) -> None:
    """Each metric of two runs over their shared items, with a paired bootstrap interval of the change,
    and the items that changed most side by side."""
    from sourcebook.cli import eval_answers as runs

    runs.print_comparison(state(ctx).settings, run_a, run_b, top=top)


@app.command("runs")
def list_runs(
    ctx: typer.Context,
    golden_set: Annotated[str | None, typer.Option("--set", help="only this set's runs")] = None,
    limit: Annotated[int, typer.Option(min=1, help="the newest N runs")] = 20,
) -> None:
    """The stored answer-eval runs, newest first."""
    from evals import store

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        runs = store.list_runs(conn, set_name=golden_set, limit=limit)
    out = table("run", "set", "status", "prompt", "model", "tenant", "started", title="answer eval runs")
    for run in runs:
        cfg = run.config
        out.add_row(
            str(run.id),
            run.set_name,
            run.status,
            cfg.prompt_version or "default",
            cfg.model or "default",
            cfg.tenant,
            run.started_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(out)


def _register_set_commands() -> None:
    from sourcebook.cli import eval_judge, eval_sets

    app.command("build-set")(eval_sets.build_set)
    app.command("import-set")(eval_sets.import_set)
    app.command("export-set")(eval_sets.export_set)
    app.command("sets")(eval_sets.list_sets)
    app.command("judge")(eval_judge.judge)
    app.command("meta-eval")(eval_judge.meta_eval)


_register_set_commands()
