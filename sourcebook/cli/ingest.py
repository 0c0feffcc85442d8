"""``sourcebook ingest``, ``sourcebook worker`` and ``sourcebook jobs``."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from sourcebook.cli import console, err_console, split_csv, state, table
from sourcebook.db import Database, open_database
from sourcebook.keys import ensure_tenant
from sourcebook.settings import Settings
from sourcebook.telemetry import quiet_job_logs

if TYPE_CHECKING:
    from ingest.jobs import WorkerRuntime
    from ingest.store import ResultRow

_STYLES = {"failed": "bold red", "removed": "yellow", "unchanged": "dim", "duplicate": "dim"}


def worker_runtime(settings: Settings, db: Database) -> WorkerRuntime:
    """A worker's runtime with the injection screen: the classifier when trained, else the rules alone."""
    from guardrails.screen import load_screen
    from ingest.jobs import WorkerRuntime

    return WorkerRuntime(settings, db, load_screen(settings.data_dir))


def _drain(db: Database, runtime: object, batch_id: uuid.UUID, expected: int) -> None:
    """Run a worker in a thread until every job of the batch has a final result, with a progress bar."""
    from ingest import store
    from ingest.jobs import QUEUE, WorkerRuntime, build_app, run_worker

    assert isinstance(runtime, WorkerRuntime)
    app = build_app(runtime.settings, db.url)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while not stop.is_set():
                # The ingest queue only: a calibration the batch queued is a standing worker's to run.
                asyncio.run(run_worker(app, runtime, wait=False, install_signal_handlers=False, queues=(QUEUE,)))
                stop.wait(1.0)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
            stop.set()

    thread = threading.Thread(target=work, name="ingest-worker", daemon=True)
    thread.start()
    columns = (
        TextColumn("[bold]ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),  # a file name, as written
    )
    try:
        with Progress(*columns, console=err_console, transient=False) as progress:
            bar = progress.add_task("", total=expected)
            while not stop.is_set():
                with db.pool.connection() as conn:
                    rows = [r for r in store.batch_results(conn, batch_id=batch_id) if r.job_id is not None]
                done = sum(1 for r in rows if r.final or r.outcome != "failed")
                last = max(rows, key=lambda r: r.created_at).source_uri.rsplit("/", 1)[-1] if rows else ""
                progress.update(bar, completed=done, description=last)
                if done >= expected:
                    break
                time.sleep(0.5)
    except KeyboardInterrupt:
        err_console.print("interrupted: the jobs not yet done stay queued; `sourcebook worker` finishes them")
        raise
    finally:
        stop.set()
        thread.join()
    if errors:
        raise errors[0]


@quiet_job_logs()
def ingest_paths(
    settings: Settings,
    paths: list[Path],
    *,
    tenant: str,
    groups: list[str],
    public: bool,
    sync: bool,
    wait: bool,
    mirror: bool = False,
) -> list[ResultRow]:
    """Plan, queue and (with ``wait``) run one batch; returns each file's latest result. The queue's and
    the jobs' INFO lines are held back: the progress bar and the summary say what they would. ``mirror``
    (with ``sync``): the tenant holds these paths alone, so its documents from anywhere else go too."""
    from ingest import batch, store
    from ingest.jobs import build_app, enqueue, settings_fingerprint

    batch_id = uuid.uuid4()
    with open_database(settings) as db:
        with db.pool.connection() as conn:
            ensure_tenant(conn, tenant)
            planned = batch.plan(
                conn, paths, tenant_id=tenant, groups=groups, public=public, fingerprint=settings_fingerprint(settings)
            )
            batch.record_planned(conn, batch_id=batch_id, tenant_id=tenant, planned=planned)
            if sync:
                batch.remove_missing(
                    conn,
                    batch_id=batch_id,
                    tenant_id=tenant,
                    folders=[p for p in paths if p.is_dir()],
                    seen={p.source_uri for p in planned},
                    whole_tenant=mirror,
                )
        queued = [p.request for p in planned if p.action == "queue" and p.request is not None]
        job_ids = enqueue(build_app(settings, db.url), queued, batch_id) if queued else []
        err_console.print(
            f"batch {batch_id}: {len(planned)} files, {len(job_ids)} queued, "
            f"{sum(p.action == 'unchanged' for p in planned)} unchanged"
        )
        if not wait:
            console.print(
                f"queued {len(job_ids)} jobs; follow them with `sourcebook jobs`, run them with `sourcebook worker`"
            )
            return []
        if job_ids:
            _drain(db, worker_runtime(settings, db), batch_id, len(job_ids))
        with db.pool.connection() as conn:
            if store.tuning_waiting(conn, tenant):
                err_console.print(
                    f"retrieval calibration of tenant {tenant} is queued: `sourcebook worker` runs it, "
                    f"or run it now with `sourcebook tune retrieval --tenant {tenant}`"
                )
            return store.batch_results(conn, batch_id=batch_id)


def _display(uri: str) -> str:
    path = Path(uri.removeprefix("file://"))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_summary(results: list[ResultRow]) -> int:
    """The per-file outcome table; returns the number of failures."""
    out = table("file", "outcome", "chunks", "embedded", "detail", title="ingestion summary")
    for row in results:
        style = _STYLES.get(row.outcome, "green")
        out.add_row(
            _display(row.source_uri), Text(row.outcome, style=style), str(row.chunks), str(row.embedded), row.detail
        )
    console.print(out)
    failed = sum(r.outcome == "failed" for r in results)
    if failed:
        err_console.print(f"[bold red]{failed} file(s) failed[/]; the others were ingested")
    return failed


def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    tenant: Annotated[str, typer.Option(help="Tenant the documents belong to (created if new).")],
    groups: Annotated[str, typer.Option(help="Comma-separated ACL groups that may read them.")] = "",
    public: Annotated[bool, typer.Option("--public", help="Also visible to the tenant's 'everyone' group.")] = False,
    sync: Annotated[bool, typer.Option("--sync", help="Also remove documents whose files are gone.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run a worker here until done (default).")] = True,
) -> None:
    """Ingest new and changed files (by content hash) as jobs; unchanged files cost nothing."""
    results = ingest_paths(
        state(ctx).settings, paths, tenant=tenant, groups=split_csv(groups), public=public, sync=sync, wait=wait
    )
    if wait and print_summary(results):
        raise typer.Exit(1)


def worker(ctx: typer.Context) -> None:
    """Run a worker until stopped (Ctrl-C / SIGTERM): ingestion jobs and queued retrieval calibrations.
    Start several to share the queues."""
    from ingest.jobs import build_app, run_worker

    settings = state(ctx).settings
    with open_database(settings) as db:
        err_console.print("worker started; waiting for ingestion and calibration jobs (Ctrl-C to stop)")
        asyncio.run(
            run_worker(
                build_app(settings, db.url), worker_runtime(settings, db), wait=True, install_signal_handlers=True
            )
        )


def jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="todo, doing, succeeded, failed, cancelled")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest jobs.")] = 50,
) -> None:
    """List ingestion jobs: status, attempts, outcome and error."""
    from ingest import store

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        rows = store.list_jobs(conn, status=status, limit=limit)
    out = table("job", "status", "attempts", "file", "outcome", "detail", "scheduled")
    for row in rows:
        out.add_row(
            str(row.id),
            row.status,
            str(row.attempts),
            row.source_uri.removeprefix("file://"),
            row.outcome or "",
            row.detail or "",
            row.scheduled_at.strftime("%H:%M:%S") if row.scheduled_at else "",
        )
    console.print(out)


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(worker)
    app.command()(jobs)
