"""The API process's memory under a long run of answers, without a model server: prints one JSON object
(and writes it to bench/results/api-memory-<timestamp>.json).

    python bench/api_memory.py                      # 2,400 requests, questions made unique by a number
    python bench/api_memory.py --requests 12000     # long enough to see whether the growth levels off
    python bench/api_memory.py --in-process         # no API: which part grows (keyword tokenizer, embedder)
    python bench/api_memory.py --repeat             # the same four questions over and over

In a temporary embedded PostgreSQL it ingests data/samples, starts `sourcebook serve` as a subprocess
with an unreachable model server (every answer is the extractive fallback: auth, embedding, search,
citations, storage, no generation) and the answer cache off, and sends the requests from 8 clients,
sampling the API's RSS every 200 requests. Unique questions add a new word each; repeated ones add
none: growth in the first but not the second follows new vocabulary, not requests.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))

from sourcebook.db import open_database  # noqa: E402
from sourcebook.keys import create_key, ensure_tenant  # noqa: E402
from sourcebook.settings import Settings  # noqa: E402

SOURCEBOOK = str(Path(sys.executable).parent / "sourcebook")
PEPPER = "bench-pepper-0123456789abcdef0123456789abcdef"
QUESTIONS = [
    "How do I request a new laptop?",
    "How do I set up the VPN?",
    "What is the per diem rate for London?",
    "How long must a password be?",
]


async def drive(api: str, key: str, requests: int, *, repeat: bool, process: psutil.Process) -> list[list[float]]:
    numbers = iter(range(requests))
    samples: list[list[float]] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in numbers:
            body = {"model": "sourcebook", "messages": [{"role": "user", "content": question(i, repeat=repeat)}]}
            response = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
            response.raise_for_status()
            if i % 200 == 0:
                samples.append([i, round(process.memory_info().rss / 2**20, 1)])

    async with httpx.AsyncClient(base_url=api, timeout=120) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(8)))
    samples.append([requests, round(process.memory_info().rss / 2**20, 1)])
    return sorted(samples)


def question(i: int, *, repeat: bool) -> str:
    return QUESTIONS[i % len(QUESTIONS)] if repeat else f"{QUESTIONS[i % len(QUESTIONS)]} (request {i})"


def questions_label(*, repeat: bool) -> str:
    return "four, repeated" if repeat else "unique (a new number in each)"


def in_process(requests: int, *, repeat: bool) -> dict[str, list[list[float]]]:
    """The same questions through the parts that see their words, one part at a time in this process:
    the keyword tokenizer, then the query embedder built as the API builds it (RSS every 200)."""
    from ingest.embed import SentenceTransformerEmbedder
    from retrieval.tokenize import Tokenizer, TokenizerSpec
    from sourcebook.models import resolve_model

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    process = psutil.Process()
    tokenizer = Tokenizer(TokenizerSpec.of(settings))
    embedder = SentenceTransformerEmbedder(
        resolve_model(settings.embedding_model, offline=settings.offline),
        device=settings.embedding_device,
        threads=settings.query_embedding_threads,
    )
    embedder.warm_up()
    parts: dict[str, Any] = {
        "keyword_tokenizer": tokenizer.tokens,
        "query_embedder": lambda q: embedder.embed([q]),
    }
    samples: dict[str, list[list[float]]] = {}
    for name, run in parts.items():
        samples[name] = []
        for i in range(requests + 1):
            run(question(i, repeat=repeat))
            if i % 200 == 0:
                samples[name].append([i, round(process.memory_info().rss / 2**20, 1)])
    return samples


def growth(samples: list[list[float]], start: int, end: int) -> float | None:
    """RSS at the last sample at or before ``end`` minus the last at or before ``start``."""
    before = [rss for i, rss in samples if i <= start]
    until = [rss for i, rss in samples if i <= end]
    return round(until[-1] - before[-1], 1) if before and until else None


def main() -> None:
    parser = argparse.ArgumentParser(description="API memory under many answers (prints JSON).")
    parser.add_argument("--requests", type=int, default=2400)
    parser.add_argument("--repeat", action="store_true", help="repeat four questions instead of unique ones")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="no API: the keyword tokenizer and the query embedder alone, in this process, one after the other",
    )
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    if args.in_process:
        parts = in_process(args.requests, repeat=args.repeat)
        report(
            started,
            {
                "benchmark": "api-memory-in-process",
                "questions": questions_label(repeat=args.repeat),
                "requests": args.requests,
                "rss_mb": parts,
                **{
                    f"{name}_growth_mb": {
                        "first_half": growth(samples, 0, args.requests // 2),
                        "second_half": growth(samples, args.requests // 2, args.requests),
                    }
                    for name, samples in parts.items()
                },
            },
        )
        return
    work = Path(tempfile.mkdtemp(prefix="sourcebook-api-memory-"))
    env = {
        **os.environ,
        "SOURCEBOOK_DATA_DIR": str(work),
        "SOURCEBOOK_KEY_PEPPER": PEPPER,
        "SOURCEBOOK_LOG_LEVEL": "ERROR",
        "SOURCEBOOK_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "SOURCEBOOK_RATE_LIMITS_ENABLED": "false",
        "SOURCEBOOK_ANSWER_CACHE": "false",
    }
    subprocess.run(
        [SOURCEBOOK, "ingest", str(ROOT / "data" / "samples"), "--tenant", "bench", "--groups", "everyone"],
        env=env,
        check=True,
        capture_output=True,
    )
    settings = Settings(_env_file=None, data_dir=work, key_pepper=PEPPER)  # type: ignore[call-arg]
    with open_database(settings) as db, db.pool.connection() as conn:
        ensure_tenant(conn, "bench")
        key = create_key(
            conn, tenant_id="bench", name="bench", scopes=["ask"], groups=["everyone"], pepper=PEPPER
        ).token
    api = "http://127.0.0.1:8033"
    proc = subprocess.Popen(
        [SOURCEBOOK, "serve", "--port", "8033"], env=env, stdout=(work / "api.log").open("wb"), stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the API did not start; see {work / 'api.log'}") from None
                time.sleep(0.5)
        wall = time.perf_counter()
        samples = asyncio.run(drive(api, key, args.requests, repeat=args.repeat, process=psutil.Process(proc.pid)))
        wall = time.perf_counter() - wall
    finally:
        proc.terminate()
        proc.wait(30)
    after_warmup = [rss for i, rss in samples if i >= 200]
    result: dict[str, Any] = {
        "benchmark": "api-memory",
        "started": started.isoformat(timespec="seconds"),
        "questions": questions_label(repeat=args.repeat),
        "requests": args.requests,
        "wall_s": round(wall, 1),
        "rss_mb": samples,
        "growth_after_200_requests_mb": round(after_warmup[-1] - after_warmup[0], 1) if after_warmup else None,
        # Whether it levels off: the growth over the run's second half, against its first.
        "growth_first_half_mb": growth(samples, 0, args.requests // 2),
        "growth_second_half_mb": growth(samples, args.requests // 2, args.requests),
    }
    report(started, result)


def report(started: dt.datetime, result: dict[str, Any]) -> None:
    out = BENCH / "results" / f"{result['benchmark']}-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
