"""Answering benchmark: prints one JSON object (and writes it to bench/results/answer-<timestamp>.json).

    python bench/answer.py                 # SmolLM2 (small), 20 questions, clients 1, 4 and 16
    python bench/answer.py --model demo    # Qwen2.5-Coder-1.5B: slower, answers worth reading

A program with a report, not a timed test. In a temporary embedded PostgreSQL it ingests the sample
documents (tenant ``bench``), starts vLLM (``sourcebook llm serve``'s code, from .venv-llm) and the API
(``sourcebook serve`` as a subprocess), then:

1. Overhead: for each question, the answer streamed through the API (``/v1/chat/completions``,
   ``stream=true``) and, right after, vLLM called directly with the exact final prompt the API sent
   (rebuilt from the same retrieval, the same template and passages; temperature 0, same
   ``max_tokens``): end-to-end latency and time to first token of both, p50/p95, and the per-question
   difference. First-turn questions: no rewriting, as the target says.
2. Throughput: the questions through the API with 1, 4 and 16 concurrent clients: requests/s,
   latency p50/p95, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))

from retrieval.pipeline import RetrievalPipeline  # noqa: E402
from retrieval.types import Caller  # noqa: E402
from serving import llm_server  # noqa: E402
from serving.answer import to_sources  # noqa: E402
from serving.prompts import answer_messages, fit_passages, load_template  # noqa: E402
from sourcebook.db import open_database  # noqa: E402
from sourcebook.keys import create_key, ensure_tenant  # noqa: E402
from sourcebook.settings import Settings  # noqa: E402

QUESTIONS = [
    "How do I request a new laptop?",
    "How do I set up the VPN?",
    "How many days a week can I work remotely?",
    "Who do I contact for IT support?",
    "What are the office opening hours?",
    "What is the per diem rate for London?",
    "How long must a password be?",
    "What changed in Ridgeline 4.2?",
    "Which holidays does the office close for in 2025?",
    "What is the expense approval limit for managers?",
    "How do I book a meeting room?",
    "What does the onboarding handbook say about the first week?",
    "What is the price of the Ridgeline enterprise plan?",
    "Where was the Q3 offsite held?",
    "What are the support ticket priority levels?",
    "Can I expense a home office chair?",
    "What laptop models can I choose from?",
    "When are expense reports due?",
    "What did the Q3 all-hands say about hiring?",
    "How do I reset my password?",
]
TENANT = "bench"
SOURCEBOOK = str(Path(sys.executable).parent / "sourcebook")
PEPPER = "bench-pepper-0123456789abcdef0123456789abcdef"


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(values, 0.5), "p95_ms": pct(values, 0.95), "mean_ms": round(statistics.fmean(values), 1)}


async def api_stream(client: httpx.AsyncClient, key: str, question: str, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": "sourcebook",
        "messages": [{"role": "user", "content": question}],
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    started = time.perf_counter()
    first = None
    final: dict[str, Any] = {}
    async with client.stream(
        "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        if response.status_code != 200:
            return {"error": f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"}
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if "error" in data:
                return {"error": data["error"]["message"]}
            delta = data["choices"][0]["delta"] if data.get("choices") else {}
            if first is None and delta.get("content"):
                first = time.perf_counter()
            if "sourcebook" in data:
                final = data
    end = time.perf_counter()
    return {
        "total_ms": (end - started) * 1000,
        "ttft_ms": ((first or end) - started) * 1000,
        "completion_tokens": final.get("usage", {}).get("completion_tokens"),
        "outcome": final.get("sourcebook", {}).get("verdict", {}).get("outcome"),
        "timings_ms": final.get("sourcebook", {}).get("timings_ms", {}),
    }


async def direct_stream(
    client: httpx.AsyncClient, model: str, messages: list[dict[str, str]], max_tokens: int
) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    started = time.perf_counter()
    first = None
    tokens = None
    async with client.stream("POST", "/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if first is None and data.get("choices") and data["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
            if data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
    end = time.perf_counter()
    return {
        "total_ms": (end - started) * 1000,
        "ttft_ms": ((first or end) - started) * 1000,
        "completion_tokens": tokens,
    }


def final_prompts(settings: Settings, questions: list[str]) -> list[list[dict[str, str]]]:
    """The exact messages the API sends to vLLM for each (first-turn) question."""
    from ingest.embed import SentenceTransformerEmbedder
    from sourcebook.models import resolve_model

    template = load_template("answer", settings.answer_prompt_version)
    prompts = []
    with open_database(settings) as db:
        embedder = SentenceTransformerEmbedder(resolve_model(settings.embedding_model, offline=True), device="cpu")
        pipeline = RetrievalPipeline(settings=settings, pool=db.pool, space=db.space, embedder=embedder)
        for question in questions:
            found = pipeline.retrieve(
                question, caller=Caller(TENANT, ("everyone",)), top_k=settings.answer_max_passages
            )
            sources = fit_passages(
                to_sources(found.passages),
                max_passages=settings.answer_max_passages,
                max_chars=settings.answer_context_chars,
            )
            if not sources:
                prompts.append([])
                continue
            messages = answer_messages(template, assistant=settings.assistant_name, question=question, sources=sources)
            prompts.append([{"role": m.role, "content": m.content} for m in messages])
    return prompts


async def overhead(
    api: str, key: str, llm_url: str, model: str, prompts: list[list[dict[str, str]]], max_tokens: int
) -> dict[str, Any]:
    rows = []
    async with (
        httpx.AsyncClient(base_url=api, timeout=600) as ours,
        httpx.AsyncClient(base_url=llm_url, timeout=600) as direct,
    ):
        await api_stream(ours, key, QUESTIONS[0], max_tokens)  # warm-up
        for question, messages in zip(QUESTIONS, prompts, strict=True):
            if not messages:
                continue
            a = await api_stream(ours, key, question, max_tokens)
            d = await direct_stream(direct, model, messages, max_tokens)
            if "error" in a:
                rows.append({"question": question, "error": a["error"]})
                continue
            rows.append({"question": question, "api": a, "direct": d})
    ok = [r for r in rows if "error" not in r]
    same = [r for r in ok if r["api"]["completion_tokens"] == r["direct"]["completion_tokens"]]
    return {
        "questions": len(rows),
        "errors": len(rows) - len(ok),
        "same_completion_tokens": len(same),
        "api_total": summary([r["api"]["total_ms"] for r in ok]),
        "api_ttft": summary([r["api"]["ttft_ms"] for r in ok]),
        "direct_total": summary([r["direct"]["total_ms"] for r in ok]),
        "direct_ttft": summary([r["direct"]["ttft_ms"] for r in ok]),
        "added_total": summary([r["api"]["total_ms"] - r["direct"]["total_ms"] for r in same]),
        "added_ttft": summary([r["api"]["ttft_ms"] - r["direct"]["ttft_ms"] for r in same]),
        "api_stage_ms_p50": {
            stage: pct([r["api"]["timings_ms"].get(stage, 0.0) for r in ok], 0.5)
            for stage in ("embed", "search", "rerank", "select", "first_token", "generate", "total")
        },
        "per_question": rows,
    }


async def throughput(api: str, key: str, clients: int, requests: int, max_tokens: int) -> dict[str, Any]:
    queue = [QUESTIONS[i % len(QUESTIONS)] for i in range(requests)]
    results: list[dict[str, Any]] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            results.append(await api_stream(client, key, queue.pop(), max_tokens))

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=api, timeout=600, limits=httpx.Limits(max_connections=clients)) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    wall = time.perf_counter() - started
    ok = [r for r in results if "error" not in r]
    return {
        "clients": clients,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_samples": [r["error"] for r in results if "error" in r][:3],
        "wall_s": round(wall, 1),
        "requests_per_s": round(len(ok) / wall, 3),
        "latency": summary([r["total_ms"] for r in ok]) if ok else {},
        "ttft": summary([r["ttft_ms"] for r in ok]) if ok else {},
    }


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description="Sourcebook's answering benchmark (prints JSON).")
    parser.add_argument("--model", default="small", help="small or demo (prepared with `sourcebook models prepare`)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument(
        "--requests-per-client", type=int, default=4, help="throughput requests = clients × this (min 16)"
    )
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="sourcebook-answer-"))
    env = {
        **os.environ,
        "SOURCEBOOK_DATA_DIR": str(work / "data"),
        "SOURCEBOOK_KEY_PEPPER": PEPPER,
        "SOURCEBOOK_LOG_LEVEL": "WARNING",
        "SOURCEBOOK_LLM_MODELS_DIR": str(Settings(_env_file=None).models_dir),  # type: ignore[call-arg]
    }
    log(f"ingesting data/samples into tenant {TENANT}")
    subprocess.run(
        [SOURCEBOOK, "ingest", str(ROOT / "data" / "samples"), "--tenant", TENANT, "--groups", "everyone"],
        env=env,
        check=True,
        capture_output=True,
    )
    base_settings = Settings(
        _env_file=None, data_dir=work / "data", key_pepper=PEPPER, llm_models_dir=env["SOURCEBOOK_LLM_MODELS_DIR"]
    )  # type: ignore[call-arg]
    log(f"starting vLLM ({args.model})")
    # Without prefix caching: the direct call right after the API's would otherwise reuse its prefill.
    llm = llm_server.start(
        base_settings,
        args.model,
        port=8031,
        log_path=work / "vllm.log",
        ready_timeout_s=900,
        extra_args=("--no-enable-prefix-caching",),
    )
    api_proc = None
    try:
        settings = Settings(_env_file=None, data_dir=work / "data", key_pepper=PEPPER, llm_base_url=llm.url)  # type: ignore[call-arg]
        with open_database(settings) as db, db.pool.connection() as conn:
            ensure_tenant(conn, TENANT)
            key = create_key(
                conn, tenant_id=TENANT, name="bench", scopes=["ask"], groups=["everyone"], pepper=PEPPER
            ).token
        prompts = final_prompts(settings, QUESTIONS)
        api_env = {**env, "SOURCEBOOK_LLM_BASE_URL": llm.url}
        api_proc = subprocess.Popen(
            [SOURCEBOOK, "serve", "--port", "8030"],
            env=api_env,
            stdout=(work / "api.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        api = "http://127.0.0.1:8030"
        wait_http(f"{api}/health", api_proc)
        log("overhead: API vs vLLM direct, same prompts")
        result: dict[str, Any] = {
            "benchmark": "answer",
            "started": started.isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "model": llm.model,
            "max_tokens": args.max_tokens,
            "overhead": asyncio.run(overhead(api, key, llm.url, llm.model, prompts, args.max_tokens)),
            "throughput": [],
            "targets": {"added_p50_ms_max": 150, "errors": 0},
        }
        # Throughput as deployed: vLLM restarted with its default prefix caching (the instructions that
        # open every prompt are then computed once).
        llm.stop()
        llm = llm_server.start(base_settings, args.model, port=8031, log_path=work / "vllm-2.log", ready_timeout_s=900)
        result["throughput_prefix_caching"] = True
        for clients in (int(c) for c in args.clients.split(",")):
            log(f"throughput: {clients} client(s)")
            result["throughput"].append(
                asyncio.run(throughput(api, key, clients, max(16, clients * args.requests_per_client), args.max_tokens))
            )
        added = result["overhead"]["added_total"]["p50_ms"]
        result["targets_met"] = {
            "added_p50_le_150ms": added <= 150,
            "no_errors": result["overhead"]["errors"] == 0 and all(t["errors"] == 0 for t in result["throughput"]),
        }
    finally:
        if api_proc is not None:
            api_proc.terminate()
            api_proc.wait(30)
        llm.stop()
    out = BENCH / "results" / f"answer-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "overhead"}
            | {"overhead": {k: v for k, v in result["overhead"].items() if k != "per_question"}},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
