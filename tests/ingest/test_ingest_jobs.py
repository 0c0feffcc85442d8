"""Ingestion through the real job queue: the CLI, workers, retries, failures, and a worker killed mid-job."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from procrastinate import App

from ingest.jobs import WorkerRuntime, build_app, enqueue, run_worker
from ingest.types import AccessList, IngestRequest
from sourcebook.db import migrate, open_database
from sourcebook.db.embedded import start_embedded
from tests.conftest import TEST_PEPPER, make_settings
from tests.ingest_helpers import SAMPLES

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]
SOURCEBOOK = str(Path(sys.executable).with_name("sourcebook"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCEBOOK_") and k != "DATABASE_URL"}
    env |= {
        "SOURCEBOOK_KEY_PEPPER": TEST_PEPPER,
        "SOURCEBOOK_ENVIRONMENT": "test",
        "COLUMNS": "250",
        "SOURCEBOOK_LOG_LEVEL": "WARNING",
    }
    return env | extra


def _run(args: list[str], env: dict[str, str], *, offline: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = ["unshare", "-n"] if offline else []
    return subprocess.run(
        [*prefix, SOURCEBOOK, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _outcomes(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and "/" in cells[1]:
            rows[cells[1].rsplit("/", 1)[-1]] = cells[2]
    return rows


def test_ingest_the_samples_offline_then_again_with_nothing_to_do(tmp_path: Path) -> None:
    """The quickstart's ingestion, with the network cut: nothing may try to download."""
    env = _env(SOURCEBOOK_DATA_DIR=str(tmp_path / "data"))
    first = _run(["ingest", str(SAMPLES), "--tenant", "demo"], env, offline=True)
    assert first.returncode == 0, first.stderr[-3000:]
    outcomes = _outcomes(first.stdout)
    samples = {p.name for p in SAMPLES.iterdir() if not p.name.endswith(".meta.json")}
    assert set(outcomes) == samples
    assert set(outcomes.values()) == {"ingested"}
    again = _run(["ingest", str(SAMPLES), "--tenant", "demo"], env, offline=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(_outcomes(again.stdout).values()) == {"unchanged"}
    assert "0 queued" in again.stderr


def test_one_bad_file_fails_alone_and_the_exit_code_says_so(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(SAMPLES / "vpn_setup.md", folder / "vpn_setup.md")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    env = _env(DATABASE_URL=database_url, SOURCEBOOK_LOG_LEVEL="INFO", SOURCEBOOK_LOG_FORMAT="json")
    result = _run(["ingest", str(folder), "--tenant", "mixed", "--groups", "staff"], env)
    assert result.returncode == 1
    # Piped output holds the progress and the summary, not the worker's per-job INFO lines.
    assert '"level": "INFO"' not in result.stderr, result.stderr[-2000:]
    outcomes = _outcomes(result.stdout)
    assert outcomes == {"empty.txt": "failed", "photo.jpg": "failed", "vpn_setup.md": "ingested"}
    assert "0 bytes" in result.stdout
    assert "unsupported file type" in result.stdout
    assert "2 file(s) failed" in result.stderr


def test_no_wait_queues_jobs_that_a_separate_worker_runs(database_url: str, tmp_path: Path) -> None:
    env = _env(DATABASE_URL=database_url)
    folder = tmp_path / "queued"
    folder.mkdir()
    for name in ("faq.html", "laptop_request_howto.md"):
        shutil.copy(SAMPLES / name, folder / name)
    queued = _run(["ingest", str(folder), "--tenant", "queued", "--groups", "everyone", "--no-wait"], env)
    assert queued.returncode == 0, queued.stderr
    assert "queued 2 jobs" in queued.stdout
    listed = _run(["jobs", "--status", "todo"], env)
    assert "faq.html" in listed.stdout
    assert "laptop_request_howto.md" in listed.stdout
    worker = subprocess.Popen([SOURCEBOOK, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if "todo" not in _run(["jobs"], env).stdout and _count_docs(database_url, "queued") == 2:
                break
            time.sleep(1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert _count_docs(database_url, "queued") == 2
    assert worker.returncode == 0


def _count_docs(url: str, tenant: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM documents WHERE tenant_id = %s", (tenant,)).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def _job(url: str, job_id: int) -> tuple[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status::text, attempts FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])  # type: ignore[call-overload]


def _work_until_failed(app: App, runtime: WorkerRuntime, url: str, job_id: int, *, timeout_s: float) -> None:
    """Run a draining worker again and again (retries wait out their backoff) until the job has failed."""
    deadline = time.monotonic() + timeout_s
    while _job(url, job_id)[0] != "failed" and time.monotonic() < deadline:
        asyncio.run(run_worker(app, runtime, wait=False, install_signal_handlers=False))
        time.sleep(0.5)


def test_a_worker_killed_mid_job_leaves_nothing_half_visible_and_the_job_is_retried(
    database_url: str, tmp_path: Path
) -> None:
    env = _env(DATABASE_URL=database_url, SOURCEBOOK_WORKER_HEARTBEAT_S="0.5", SOURCEBOOK_WORKER_STALLED_AFTER_S="3")
    big = tmp_path / "long" / "handbook.md"
    big.parent.mkdir()
    big.write_text(
        "# Handbook\n\n"
        + "\n\n".join(
            f"## Topic {i}\n\n"
            + " ".join(f"Rule {i}.{j} explains procedure {j} of topic {i} in detail." for j in range(12))
            for i in range(150)
        )
    )
    queued = _run(["ingest", str(big.parent), "--tenant", "crash", "--groups", "everyone", "--no-wait"], env)
    assert queued.returncode == 0, queued.stderr
    with psycopg.connect(database_url) as conn:
        job_id = int(conn.execute("SELECT max(id) FROM procrastinate_jobs").fetchone()[0])  # type: ignore[index]

    victim = subprocess.Popen([SOURCEBOOK, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _job(database_url, job_id)[0] != "doing" and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # well into parsing or embedding
    victim.kill()
    victim.wait()
    assert _job(database_url, job_id)[0] == "doing"
    assert _count_docs(database_url, "crash") == 0, "nothing of a half-done job is visible"

    time.sleep(4)  # the dead worker's heartbeat is now stale
    rescuer = subprocess.Popen([SOURCEBOOK, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _job(database_url, job_id)[0] != "succeeded" and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        rescuer.wait(timeout=60)
    status, attempts = _job(database_url, job_id)
    assert (status, attempts) == ("succeeded", 2), "the crashed attempt counts; the retry finished the job"
    with psycopg.connect(database_url) as conn:
        chunks, expected = conn.execute(
            "SELECT count(c.id), max(d.chunk_count) FROM documents d JOIN chunks c ON c.document_id = d.id "
            "WHERE d.tenant_id = 'crash'"
        ).fetchone()  # type: ignore[misc]
    assert chunks == expected > 100


def test_transient_failures_are_retried_with_backoff_then_fail(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url, job_max_attempts=2, job_retry_base_s=1)
    path = tmp_path / "note.md"
    path.write_text("# Note\n\nA note that never gets stored.")
    request = IngestRequest(path, path.as_uri(), AccessList("retry", ("everyone",)))
    with open_database(settings) as db:
        with db.pool.connection() as conn:
            conn.execute("INSERT INTO tenants (id, name) VALUES ('retry', 'retry') ON CONFLICT DO NOTHING")
        app = build_app(settings, db.url)
        [job_id] = enqueue(app, [request], uuid.uuid4())
        runtime = WorkerRuntime(settings, db)
        runtime.deps()
        db.pool.close()  # every attempt now fails on the database: a transient error
        _work_until_failed(app, runtime, database_url, job_id, timeout_s=60)
    assert _job(database_url, job_id) == ("failed", 2)


def test_permanent_failures_are_not_retried(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url, job_max_attempts=3)
    path = tmp_path / "gone.md"
    path.write_text("# Gone")
    request = IngestRequest(path, path.as_uri(), AccessList("perm", ("everyone",)))
    path.unlink()
    with open_database(settings) as db:
        with db.pool.connection() as conn:
            conn.execute("INSERT INTO tenants (id, name) VALUES ('perm', 'perm') ON CONFLICT DO NOTHING")
        app = build_app(settings, db.url)
        batch = uuid.uuid4()
        [job_id] = enqueue(app, [request], batch)
        asyncio.run(run_worker(app, WorkerRuntime(settings, db), wait=False, install_signal_handlers=False))
        with db.pool.connection() as conn:
            from ingest.store import batch_results

            [result] = batch_results(conn, batch_id=batch)
    assert _job(database_url, job_id) == ("failed", 1)
    assert (result.outcome, result.final) == ("failed", True)
    assert "disappeared" in result.detail


class _BrokenEmbedder:
    """An embedder failing the way no one foresaw (a library bug, say)."""

    model_name = "broken"
    dim = 384

    def embed(self, texts: object) -> object:
        raise RuntimeError("tensor shapes disagree")


def test_an_unexpected_error_is_recorded_retried_and_never_leaves_the_batch_waiting(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, database_url=database_url, job_max_attempts=2, job_retry_base_s=1)
    path = tmp_path / "note.md"
    path.write_text("# Note\n\nA note whose embedding fails.")
    request = IngestRequest(path, path.as_uri(), AccessList("oops", ("everyone",)))
    with open_database(settings) as db:
        with db.pool.connection() as conn:
            conn.execute("INSERT INTO tenants (id, name) VALUES ('oops', 'oops') ON CONFLICT DO NOTHING")
        app = build_app(settings, db.url)
        batch = uuid.uuid4()
        [job_id] = enqueue(app, [request], batch)
        runtime = WorkerRuntime(settings, db)
        runtime._deps = dataclasses.replace(runtime.deps(), embedder=_BrokenEmbedder())  # type: ignore[arg-type]
        _work_until_failed(app, runtime, database_url, job_id, timeout_s=60)
        with db.pool.connection() as conn:
            from ingest.store import batch_results

            [result] = batch_results(conn, batch_id=batch)
    assert _job(database_url, job_id) == ("failed", 2)
    assert (result.outcome, result.final, result.attempt) == ("failed", True, 2)
    assert result.detail == "unexpected RuntimeError: tensor shapes disagree"


def test_a_job_whose_backend_crashes_fails_with_its_reason_after_the_normal_attempts(tmp_path: Path) -> None:
    """The fault of the AVX-512 pgvector: every attempt's backend dies by SIGILL (the server then drops
    every connection and recovers). The job ends failed with that reason after its attempts, once."""
    server = start_embedded(tmp_path / "pg" / "data")
    try:
        url = server.url("postgres")
        migrate.upgrade(url)
        settings = make_settings(tmp_path, database_url=url, job_max_attempts=2, job_retry_base_s=1)
        path = tmp_path / "note.md"
        path.write_text("# Note\n\nA note whose storing crashes the backend.")
        request = IngestRequest(path, path.as_uri(), AccessList("crashing", ("everyone",)))
        with open_database(settings) as db:
            with db.pool.connection() as conn:
                conn.execute("INSERT INTO tenants (id, name) VALUES ('crashing', 'crashing')")
                conn.execute(
                    "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                    " PERFORM pg_sleep(30); RETURN NEW; END $$"
                )
                conn.execute("CREATE TRIGGER stall BEFORE INSERT ON documents FOR EACH ROW EXECUTE FUNCTION stall()")
            app = build_app(settings, db.url)
            batch = uuid.uuid4()
            [job_id] = enqueue(app, [request], batch)
            stop = threading.Event()
            killed: list[int] = []
            killer = threading.Thread(target=_kill_sleeping_backends, args=(server.admin_url, stop, killed))
            killer.start()
            try:
                runtime = WorkerRuntime(settings, db)
                _work_until_failed(app, runtime, url, job_id, timeout_s=120)
            finally:
                stop.set()
                killer.join()
            with db.pool.connection() as conn:
                from ingest.store import batch_results

                [result] = batch_results(conn, batch_id=batch)
        assert _job(url, job_id) == ("failed", 2)
        assert len(killed) == 2
        assert (result.outcome, result.final, result.attempt) == ("failed", True, 2)
        assert "connection to PostgreSQL was lost" in result.detail
        assert "terminated by signal 4" in server.log_path.read_text()
    finally:
        server.release()


def _kill_sleeping_backends(admin_url: str, stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set():
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                while not stop.is_set():
                    for (pid,) in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
                    ).fetchall():
                        os.kill(int(pid), signal.SIGILL)  # type: ignore[call-overload]
                        killed.append(int(pid))  # type: ignore[call-overload]
                    time.sleep(0.1)
        except psycopg.OperationalError:
            time.sleep(0.2)  # this connection went with the crash too
