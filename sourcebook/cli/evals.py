"""``sourcebook eval``: the ML team's suites (retrieval for now)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from sourcebook.cli import console, err_console, split_csv, state, table
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
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with open_database(settings) as db, Progress(*columns, console=err_console) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

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
