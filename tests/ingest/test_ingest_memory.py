"""A worker runs its jobs on threads of its own, one per concurrent job, for as long as it lives.

Each thread that parses and embeds keeps a malloc arena at the high-water mark of the largest file it
handled, plus its own tokenizer copy and OpenMP team. When jobs ran on the event loop's default executor
they spread over several threads, and peak RSS climbed with the number of files (3.19 GB on the
benchmark corpus).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ingest.jobs import WorkerRuntime, build_app, enqueue, run_worker
from ingest.types import AccessList, IngestRequest
from retrieval.tokenize import Tokenizer
from retrieval.types import Embedder
from sourcebook.db import open_database
from tests.conftest import make_settings

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]


class _ThreadRecordingEmbedder:
    """The real embedder, noting which thread each call came from."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.threads: set[threading.Thread] = set()

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.threads.add(threading.current_thread())
        return self._inner.embed(texts)


class _ThreadRecordingTokenizer:
    """The real keyword tokenizer (called in the job's own thread), noting which thread each call came from."""

    def __init__(self, inner: Tokenizer) -> None:
        self._inner = inner
        self.threads: set[threading.Thread] = set()

    def tsvector(self, text: str) -> tuple[str, int]:
        self.threads.add(threading.current_thread())
        return self._inner.tsvector(text)


def test_every_job_runs_on_the_same_worker_thread_across_worker_runs(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url, ingest_concurrency=1)
    requests = []
    for i in range(6):
        path = tmp_path / f"note-{i}.md"
        path.write_text(f"# Note {i}\n\nParagraph {i} of a note about threads and memory arenas.")
        requests.append(IngestRequest(path, path.as_uri(), AccessList("threads", ("everyone",))))
    with open_database(settings) as db:
        with db.pool.connection() as conn:
            conn.execute("INSERT INTO tenants (id, name) VALUES ('threads', 'threads') ON CONFLICT DO NOTHING")
        app = build_app(settings, db.url)
        runtime = WorkerRuntime(settings, db)
        embedder = _ThreadRecordingEmbedder(runtime.deps().embedder)
        tokenizer = _ThreadRecordingTokenizer(runtime.deps().tokenizer)
        runtime._deps = dataclasses.replace(runtime.deps(), embedder=embedder, tokenizer=tokenizer)  # type: ignore[arg-type]
        # Two worker runs, each with its own event loop, as `sourcebook ingest` drains a batch.
        for part in (requests[:3], requests[3:]):
            enqueue(app, part, uuid.uuid4())
            asyncio.run(run_worker(app, runtime, wait=False, install_signal_handlers=False))
    [job_thread] = tokenizer.threads
    assert job_thread.name.startswith("ingest-job")
    [model_thread] = embedder.threads  # the model always runs on the gather's one thread
    assert model_thread.name.startswith("embed")
