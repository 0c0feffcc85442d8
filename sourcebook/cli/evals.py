"""``sourcebook eval``: the ML team's suites (retrieval for now)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from sourcebook.cli import console, err_console, split_csv, state, table
from sourcebook.db import open_database
from sourcebook.telemetry import SERVICE_LOGGERS, quiet_job_logs

if TYPE_CHECKING:
    from evals.answers import Scored
    from evals.goldens import GoldenItem
    from sourcebook.settings import Settings

EVAL_GROUP = "eval"
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


@app.command("dev-sets")
def dev_sets(
    out: Annotated[Path, typer.Option(help="the folder the sets and their corpora go to")],
    cache: Annotated[Path, typer.Option(help="downloads go here (once)")] = Path(".cache/eval-sources"),
    seed: Annotated[int, typer.Option(help="the sample's seed")] = 7,
) -> None:
    """Build the answer dev sets from data that ships offline: the Python FAQ (answerable, and unanswerable
    from pages left out), SQuAD counterfactual (swapped values) and SQuAD questions the corpus can't answer."""
    from evals.goldens import build_dev_sets, read_set

    for folder in build_dev_sets(out, cache, seed=seed):
        golden = read_set(folder)
        console.print(f"{golden.name}: {len(golden.items)} items over corpus {golden.corpus} ({folder})")


@app.command("answers")
def answers(
    ctx: typer.Context,
    golden_set: Annotated[Path, typer.Option("--set", help="a golden set folder (set.json, items.jsonl)")],
    limit: Annotated[int | None, typer.Option(min=1, help="a seeded sample of N items")] = None,
    seed: Annotated[int, typer.Option(help="the sample's seed")] = 1,
    prompt_version: Annotated[str | None, typer.Option(help="answer prompt version (default: the setting)")] = None,
    temperature: Annotated[float | None, typer.Option(min=0, max=2, help="sampling temperature")] = None,
    max_passages: Annotated[int | None, typer.Option(min=1, max=50, help="passages shown to the model")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="questions in flight at once")] = 1,
    out: Annotated[Path | None, typer.Option(help="where results go (default: DATA_DIR/evals/answers/SET-…)")] = None,
) -> None:
    """Ingest the set's corpus into its own tenant, ask every question through the answer service, and
    score the answers without a judge: correct (with a cited passage holding it), false abstention,
    from memory, right abstention, time per answer."""
    import asyncio
    import random

    from evals.goldens import read_set
    from sourcebook.cli.ingest import ingest_paths

    settings = state(ctx).settings
    golden = read_set(golden_set)
    updates: dict[str, object] = {"answer_cache": False}
    if prompt_version is not None:
        updates["answer_prompt_version"] = prompt_version
    if max_passages is not None:
        updates["answer_max_passages"] = max_passages
    settings = settings.model_copy(update=updates)
    items = list(golden.items)
    if limit is not None and limit < len(items):
        keep = set(random.Random(seed).sample(range(len(items)), k=limit))  # noqa: S311 (a sample, not a secret)
        items = [item for n, item in enumerate(items) if n in keep]
    tenant = f"eval-{golden.corpus}"
    results = ingest_paths(
        settings, [golden.corpus_dir], tenant=tenant, groups=[EVAL_GROUP], public=False, sync=True, wait=True
    )
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        err_console.print(f"[yellow]{len(failed)} corpus files failed to ingest (first: {failed[0].source_uri})[/]")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = out or settings.data_dir / "evals" / "answers" / f"{golden.name}-{stamp}"
    with quiet_job_logs(SERVICE_LOGGERS):
        summary = asyncio.run(
            _answer_set(settings, golden.name, items, tenant, target, concurrency=concurrency, temperature=temperature)
        )
    _print_answer_summary(summary)
    console.print(f"results: {target} (summary.json, results.jsonl)")


async def _answer_set(
    settings: Settings,
    name: str,
    items: list[GoldenItem],
    tenant: str,
    target: Path,
    *,
    concurrency: int,
    temperature: float | None,
) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    from evals.answers import answer_items, as_row, summarize
    from serving.runtime import build_services

    target.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        service = services.answers
        with (
            (target / "results.jsonl").open("w", encoding="utf-8") as fh,
            Progress(*columns, console=err_console) as progress,
        ):
            bar = progress.add_task(name, total=len(items))

            def done(scored: Scored) -> None:
                fh.write(json.dumps(as_row(scored), ensure_ascii=False) + "\n")
                fh.flush()
                progress.advance(bar)

            scored = await answer_items(
                service,
                items,
                tenant=tenant,
                groups=(EVAL_GROUP,),
                concurrency=concurrency,
                temperature=temperature,
                on_result=done,
            )
    summary = {
        "set": name,
        "prompt_version": service.answer_prompt.version,
        "temperature": settings.answer_temperature if temperature is None else temperature,
        "max_passages": settings.answer_max_passages,
        "concurrency": concurrency,
        **summarize(scored),
    }
    (target / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _print_answer_summary(summary: dict[str, Any]) -> None:
    def pct(key: str) -> str:
        value = summary[key]
        return "-" if value is None else f"{100 * value:.1f}%"

    out = table(
        "correct",
        "false abstention",
        "from memory",
        "right abstention",
        "p50 s",
        "p95 s",
        title=f"{summary['set']}: {summary['items']} items, {summary['prompt_version']}, {summary['model']}",
    )
    times = summary["answer_ms"]
    out.add_row(
        pct("correct"),
        pct("false_abstention"),
        pct("from_memory"),
        pct("right_abstention"),
        "-" if times["p50"] is None else f"{times['p50'] / 1000:.1f}",
        "-" if times["p95"] is None else f"{times['p95'] / 1000:.1f}",
    )
    console.print(out)
    if summary["extractive"]:
        err_console.print(f"[bold yellow]{summary['extractive']} answers were extractive: no model server answered[/]")
    if summary["errors"]:
        err_console.print(f"[bold red]{summary['errors']} questions failed (see results.jsonl)[/]")
    print(json.dumps(summary))
