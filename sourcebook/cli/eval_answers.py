"""``sourcebook eval answers|compare|runs``: a golden set's runs through the answer service, stored in
``eval_runs``, compared with a paired bootstrap and gated against the set's baseline run."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sourcebook.cli import console, err_console, split_csv, table
from sourcebook.db import open_database
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.telemetry import SERVICE_LOGGERS, quiet_job_logs

if TYPE_CHECKING:
    from evals.goldens import GoldenItem
    from evals.runner import RunOutcome
    from evals.store import RunConfig, StoredSet
    from sourcebook.settings import Settings

EVAL_GROUP = "eval"
AB_KEYS = {"prompt": "answer_prompt_version", "model": "llm_model"}
# An eval run waits this long for an answer's first token (unless the setting is longer): the serving
# deadline (30 s) on a loaded CPU turns answers into the extractive fallback, which measures no model.
EVAL_FIRST_TOKEN_S = 600.0
# The exit status of a run some of whose answers no model gave (a regression exits 1).
EXIT_EXTRACTIVE = 3


@dataclass(frozen=True, slots=True)
class Ask:
    """How one run asks: the set, the answer settings, the items, and what is done with the result."""

    golden_set: str
    tenant: str | None
    groups: tuple[str, ...]
    limit: int | None
    seed: int
    temperature: float | None
    concurrency: int
    tolerance: float
    out: Path | None


def resolve_set(settings: Settings, name_or_folder: str) -> StoredSet:
    """A stored set by name, or a set folder, imported (replacing the stored set of its name) first."""
    from evals import store
    from evals.goldens import read_set

    folder = Path(name_or_folder)
    with open_database(settings) as db, db.pool.connection() as conn:
        if folder.is_dir():
            golden = read_set(folder)
            corpus = golden.corpus_dir.resolve()
            store.save_set(conn, golden, corpus_path=corpus if corpus.is_dir() else None)
            name = golden.name
        else:
            name = name_or_folder
        return store.load_set(conn, name)


def tenant_for(settings: Settings, stored: StoredSet, tenant: str | None) -> str:
    """The tenant asked: the one named, else the set's corpus ingested into ``eval-<corpus>``, else the
    set's corpus as a tenant (sets harvested from a tenant's feedback or reviews)."""
    from sourcebook.cli.ingest import ingest_paths

    if tenant is not None:
        return tenant
    if stored.corpus_path is None:
        return stored.golden.corpus
    if not stored.corpus_path.is_dir():
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"the corpus of set {stored.golden.name} is gone from {stored.corpus_path}",
            hint="import the set folder again, or name the tenant to ask with --tenant",
        )
    name = f"eval-{stored.golden.corpus}"
    results = ingest_paths(
        settings,
        [stored.corpus_path],
        tenant=name,
        groups=[EVAL_GROUP],
        public=False,
        sync=True,
        wait=True,
        mirror=True,
    )
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        err_console.print(
            f"[yellow]{len(failed)} corpus files failed to ingest (first: {escape(failed[0].source_uri)})[/]"
        )
    return name


def run_once(settings: Settings, ask: Ask, stored: StoredSet, config: RunConfig, resume: int | None) -> RunOutcome:
    """One run of the set (or the rest of run ``resume``), its results stored, its reports written."""
    from evals import runner, sources

    with open_database(settings) as db:
        run_id, config, done = runner.start_or_resume(db.pool, stored, config, resume)
    items = [i for i in sources.pick(stored.golden.items, limit=config.limit, seed=config.seed) if i.id not in done]
    err_console.print(f"run {run_id}: set {stored.golden.name}, {len(items)} items to ask ({len(done)} already scored)")
    settings = settings.model_copy(update=answer_settings(settings, config))
    try:
        with quiet_job_logs(SERVICE_LOGGERS):
            outcome = asyncio.run(_execute(settings, ask, stored, run_id, items, config, len(done)))
    except KeyboardInterrupt:
        err_console.print(
            f"[yellow]interrupted: resume with `sourcebook eval answers --set {ask.golden_set} --resume {run_id}`[/]"
        )
        raise typer.Exit(130) from None
    _write_reports(settings, ask, stored.golden.name, outcome)
    return outcome


def answer_settings(settings: Settings, config: RunConfig) -> dict[str, object]:
    updates: dict[str, object] = {
        "answer_cache": False,
        "answer_first_token_s": max(settings.answer_first_token_s, EVAL_FIRST_TOKEN_S),
    }
    if config.prompt_version is not None:
        updates["answer_prompt_version"] = config.prompt_version
    if config.model is not None:
        updates["llm_model"] = config.model
    if config.max_passages is not None:
        updates["answer_max_passages"] = config.max_passages
    return updates


async def _execute(
    settings: Settings,
    ask: Ask,
    stored: StoredSet,
    run_id: int,
    items: list[GoldenItem],
    config: RunConfig,
    done: int,
) -> RunOutcome:
    from contextlib import AsyncExitStack

    from evals import runner
    from serving.runtime import build_services

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        with Progress(*columns, console=err_console) as progress:
            bar = progress.add_task(f"run {run_id} {stored.golden.name}", total=len(items) + done, completed=done)
            return await runner.execute(
                services.answers,
                services.pool,
                stored,
                run_id,
                items,
                config=config,
                groups=ask.groups,
                concurrency=ask.concurrency,
                tolerance=ask.tolerance,
                on_result=lambda _: progress.advance(bar),
            )


def _write_reports(settings: Settings, ask: Ask, name: str, outcome: RunOutcome) -> None:
    from evals import report_answers

    target = ask.out or settings.data_dir / "evals" / "answers" / f"{name}-run{outcome.run_id}"
    with open_database(settings) as db, db.pool.connection() as conn:
        paths = report_answers.write_run_reports(conn, outcome.run_id, target)
    console.print(f"reports: {', '.join(str(p) for p in paths)}")


def print_run(outcome: RunOutcome, title: str) -> None:
    """The run's metrics with their intervals, and the gate's findings."""
    out = table("metric", "value", "95% CI", "items", title=title)
    for name, est in outcome.metrics["metrics"].items():
        if est["mean"] is not None:
            out.add_row(name, f"{est['mean']:.3f}", f"[{est['low']:.3f}, {est['high']:.3f}]", str(est["n"]))
    latency = outcome.metrics["latency_s"]
    out.add_row("latency p50 / p95 s", f"{latency['p50']} / {latency['p95']}", "", str(len(outcome.results)))
    console.print(out)
    summary = outcome.metrics["summary"]
    if outcome.extractive:
        err_console.print(
            f"[bold red]{outcome.extractive} answers were extractive: no model server answered them[/] "
            "(see `sourcebook llm status`). The run's figures are not the model's, and it can't be a baseline.",
            highlight=False,
        )
    if summary["errors"]:
        err_console.print(f"[bold red]{summary['errors']} questions failed (see the run's results)[/]")
    print(json.dumps({"run": outcome.run_id, "baseline": outcome.baseline_id, **outcome.metrics}))


def parse_ab(value: str) -> tuple[str, list[str]]:
    """``prompt=v2,v7`` or ``model=a,b``: the setting and its two values."""
    key, _, values = value.partition("=")
    options = split_csv(values)
    if key not in AB_KEYS or len(options) != 2:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"--ab {value!r}: expected prompt=A,B or model=A,B",
            hint="for example --ab prompt=v2,v7",
        )
    return key, options


def make_baseline(settings: Settings, set_id: int, run_id: int) -> None:
    from evals import store

    with open_database(settings) as db, db.pool.connection() as conn:
        store.set_baseline(conn, set_id, run_id)


def run_ab(settings: Settings, ask: Ask, stored: StoredSet, base: RunConfig, ab: str) -> None:
    """The set run twice, once per value of one setting (prompt or model), then the two runs compared."""
    from dataclasses import replace

    key, values = parse_ab(ab)
    ids, extractive = [], False
    for value in values:
        config = replace(base, prompt_version=value) if key == "prompt" else replace(base, model=value)
        outcome = run_once(settings, ask, stored, replace(config, label=f"{key}={value}"), None)
        print_run(outcome, f"run {outcome.run_id}: {stored.golden.name}, {key}={value}")
        ids.append(outcome.run_id)
        extractive = extractive or outcome.extractive > 0
    print_comparison(settings, ids[0], ids[1], top=5)
    if extractive:
        raise typer.Exit(EXIT_EXTRACTIVE)


def print_comparison(settings: Settings, run_a: int, run_b: int, *, top: int) -> None:
    """Each metric of two runs with the paired interval of the change, and the items that moved most."""
    from evals import stats, store

    with open_database(settings) as db, db.pool.connection() as conn:
        a, b = store.load_run(conn, run_a), store.load_run(conn, run_b)
        left, right = store.run_results(conn, run_a), store.run_results(conn, run_b)
    if a.set_id != b.set_id:
        err_console.print(f"[yellow]runs {run_a} and {run_b} are of different sets: only shared item ids compare[/]")
    out = table("metric", f"run {run_a}", f"run {run_b}", "change", "95% CI (paired)", "items", title="comparison")
    for change in stats.compare(left, right):
        if change.diff is None:
            continue
        out.add_row(
            change.metric,
            f"{change.a:.3f}",
            f"{change.b:.3f}",
            f"{change.diff:+.3f}",
            f"[{change.low:+.3f}, {change.high:+.3f}]",
            str(change.n),
        )
    console.print(out)
    moved = table("item", "question", f"run {run_a}", f"run {run_b}", title=f"the {top} items that changed most")
    for x, y, _ in stats.most_changed(left, right, top=top):
        moved.add_row(
            x.id, x.question, f"{x.answer}\n[{x.result}, {x.outcome}]", f"{y.answer}\n[{y.result}, {y.outcome}]"
        )
    console.print(moved)
