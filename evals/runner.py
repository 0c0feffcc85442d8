"""A golden set's run through the answer service, kept in ``eval_runs``: each item's result is stored as
soon as it is scored, so an interrupted run resumes with the items it has not scored yet. The run's
metrics (judge-free, with bootstrap intervals) are stored when the last item is in, and compared with
the set's baseline run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from psycopg_pool import ConnectionPool

from answer.pipeline import AnswerService
from evals import stats, store
from evals.answers import Scored, answer_items, summarize
from evals.goldens import GoldenItem
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_id: int
    results: tuple[Scored, ...]
    metrics: dict[str, Any]
    baseline_id: int | None
    regressions: tuple[str, ...]

    @property
    def extractive(self) -> int:
        """Answers no model gave (the extractive fallback): a run with any measures no model."""
        return int(self.metrics["summary"]["extractive"])


def run_metrics(results: Sequence[Scored]) -> dict[str, Any]:
    """What a finished run stores: each metric's estimate, latency, and the set's rates and counts."""
    p50, p95 = stats.latency(results)
    return {
        "metrics": {name: asdict(e) for name, e in stats.estimates(results).items()},
        "latency_s": {"p50": p50, "p95": p95},
        "summary": summarize(results),
    }


def start_or_resume(
    pool: ConnectionPool[Conn], stored: store.StoredSet, config: store.RunConfig, resume: int | None
) -> tuple[int, store.RunConfig, set[str]]:
    """A new run, or the unfinished run ``resume`` of the same set: (run id, its configuration, the ids
    of the items it has scored)."""
    with pool.connection() as conn:
        if resume is None:
            return store.create_run(conn, stored, config), config, set()
        run = store.load_run(conn, resume)
        if run.set_id != stored.id or run.status != "running":
            raise SourcebookError(
                ErrorCode.INVALID_REQUEST,
                f"run {resume} is {run.status} on set {run.set_name}: only an unfinished run of this set resumes",
            )
        return run.id, run.config, {s.id for s in store.run_results(conn, run.id)}


async def execute(
    service: AnswerService,
    pool: ConnectionPool[Conn],
    stored: store.StoredSet,
    run_id: int,
    items: Sequence[GoldenItem],
    *,
    config: store.RunConfig,
    groups: tuple[str, ...],
    concurrency: int,
    tolerance: float,
    on_result: Callable[[Scored], None] | None = None,
) -> RunOutcome:
    """Ask the items not scored yet, storing each result as it comes, then store the run's metrics and
    compare it with the set's baseline run (when it has one)."""

    def keep(scored: Scored) -> None:
        with pool.connection() as conn:
            store.add_result(conn, run_id, scored)
        if on_result is not None:
            on_result(scored)

    await answer_items(
        service,
        items,
        tenant=config.tenant,
        groups=groups,
        concurrency=concurrency,
        temperature=config.temperature,
        on_result=keep,
    )
    with pool.connection() as conn:
        results = store.run_results(conn, run_id)
        metrics = run_metrics(results)
        store.finish_run(conn, run_id, metrics)
        baseline_id = store.baseline_run(conn, stored.id)
        baseline = store.run_results(conn, baseline_id) if baseline_id is not None else []
    found = stats.regressions(baseline, results, tolerance=tolerance) if baseline_id not in (None, run_id) else []
    return RunOutcome(run_id, tuple(results), metrics, baseline_id, tuple(found))
