"""Answering benchmark: prints one JSON object (and writes it to bench/results/answer-<timestamp>.json).

    python bench/answer.py                 # SmolLM2 (small), 20 questions, clients 1, 4 and 16
    python bench/answer.py --model demo    # Qwen2.5-Coder-1.5B: slower, answers worth reading

A program with a report, not a timed test. In a temporary embedded PostgreSQL it ingests the sample
documents (tenant ``bench``), starts vLLM (``sourcebook llm serve``'s code, from .venv-llm) and the API
(``sourcebook serve`` as a subprocess), then:

1. Overhead: for each question, the answer streamed through the API (``/v1/chat/completions``,
   ``stream=true``) and, right after, vLLM called directly with the exact final prompt the API sent
   (rebuilt from the same retrieval, the same template and passages; temperature 0, same
   ``max_tokens``; for a two-step template both calls, the choice of passage and the answer from
   it): end-to-end latency and time to first token of both, p50/p95, and the per-question difference.
   First-turn questions: no rewriting, as the target says.
2. Throughput: the questions through the API with 1, 4 and 16 concurrent clients: requests/s,
   latency p50/p95, errors. Phases 1 and 2 run with the answer cache and rate limits off: they
   measure the engine, and they repeat questions.
3. Soak (``--soak-s``, default 600; 0 skips it): 16 clients for that long against a fresh API
   process with the answer cache on, stopping by itself. The first half asks questions that never
   repeat (every lookup misses: the cache's cost without its benefit), the second half the 20
   questions over and over (hits wherever the first answer was cacheable). Error rate,
   p50/p95/p99 per half, cache hits, and the API process's RSS sampled every 5 s: its growth over
   the run and per minute (least squares) after the first minute's warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))

from answer.generation import passage_budget  # noqa: E402
from answer.prompts import (  # noqa: E402
    PromptTemplate,
    answer_messages,
    answered_from,
    fit_passages,
    follow_messages,
    load_template,
)
from answer.sources import to_sources  # noqa: E402
from answer.types import Message, Source  # noqa: E402
from guardrails.canary import canary_instruction, new_canary  # noqa: E402
from retrieval.pipeline import RetrievalPipeline  # noqa: E402
from retrieval.types import Caller  # noqa: E402
from sourcebook.db import open_database  # noqa: E402
from sourcebook.keys import create_key, ensure_tenant  # noqa: E402
from sourcebook.llm import server as llm_server  # noqa: E402
from sourcebook.llm.supervisor import measured_context_chars  # noqa: E402
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
    if not values:
        return {}
    return {
        "p50_ms": pct(values, 0.5),
        "p95_ms": pct(values, 0.95),
        "p99_ms": pct(values, 0.99),
        "mean_ms": round(statistics.fmean(values), 1),
    }


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
        "cached": bool(final.get("sourcebook", {}).get("cached")),
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


@dataclass(frozen=True)
class Prompt:
    """What the API sends to vLLM for one question: the messages, and for a two-step template the
    passages the first step chooses among."""

    question: str
    messages: list[Message]
    sources: list[Source]


def final_prompts(settings: Settings, questions: list[str]) -> tuple[PromptTemplate, list[Prompt]]:
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
                max_chars=passage_budget(template, question, measured_context_chars(settings)),
            )
            messages = answer_messages(template, assistant=settings.assistant_name, question=question, sources=sources)
            # The guards end the system prompt with a per-request canary line: one of the same shape.
            messages[0] = Message("system", f"{messages[0].content}\n\n{canary_instruction(new_canary())}")
            prompts.append(Prompt(question, messages if sources else [], sources))
    return template, prompts


def _wire(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


async def direct_answer(
    client: httpx.AsyncClient, model: str, template: PromptTemplate, prompt: Prompt, max_tokens: int
) -> dict[str, Any]:
    """vLLM called directly as the API calls it: for a two-step template the choice first (its time
    counts in the total and the time to first token), then the answer from the passage chosen."""
    if template.follow is None:
        return await direct_stream(client, model, _wire(prompt.messages), max_tokens)
    started = time.perf_counter()
    body = {"model": model, "messages": _wire(prompt.messages), "max_tokens": 8, "temperature": 0}
    reply = (await client.post("/chat/completions", json=body)).json()["choices"][0]["message"]["content"] or ""
    chosen_ms = (time.perf_counter() - started) * 1000
    numbers = answered_from(template, reply, prompt.sources, prompt.question)
    if not numbers:
        return {"total_ms": chosen_ms, "ttft_ms": chosen_ms, "completion_tokens": None}
    follow = follow_messages(
        template, prompt.messages, reply=reply, numbers=numbers, question=prompt.question, sources=prompt.sources
    )
    answered = await direct_stream(client, model, _wire(follow), max_tokens)
    return {**answered, "total_ms": answered["total_ms"] + chosen_ms, "ttft_ms": answered["ttft_ms"] + chosen_ms}


async def overhead(
    api: str, key: str, llm_url: str, model: str, prompts: tuple[PromptTemplate, list[Prompt]], max_tokens: int
) -> dict[str, Any]:
    template, asked = prompts
    rows = []
    async with (
        httpx.AsyncClient(base_url=api, timeout=600) as ours,
        httpx.AsyncClient(base_url=llm_url, timeout=600) as direct,
    ):
        await api_stream(ours, key, QUESTIONS[0], max_tokens)  # warm-up
        for question, prompt in zip(QUESTIONS, asked, strict=True):
            if not prompt.messages:
                continue
            a = await api_stream(ours, key, question, max_tokens)
            d = await direct_answer(direct, model, template, prompt, max_tokens)
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
        # Time to the first token depends on the prompt, the same length both ways: every pair counts.
        "added_ttft_all": summary([r["api"]["ttft_ms"] - r["direct"]["ttft_ms"] for r in ok]),
        "api_stage_ms_p50": {
            stage: pct([r["api"]["timings_ms"].get(stage, 0.0) for r in ok], 0.5)
            for stage in (
                "input",
                "embed",
                "search",
                "rerank",
                "select",
                "first_token",
                "first_shown",
                "generate",
                "total",
            )
        },
        # What checking each sentence before it is shown costs the reader: from the model's first
        # token to the first text shown (the first sentence complete and passed), per answer.
        "sentence_gate_ms": summary(
            [
                r["api"]["timings_ms"]["first_shown"] - r["api"]["timings_ms"]["first_token"]
                for r in ok
                if "first_shown" in r["api"]["timings_ms"] and "first_token" in r["api"]["timings_ms"]
            ]
        ),
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


async def soak_phase(
    api: str, key: str, clients: int, duration_s: float, max_tokens: int, *, unique: bool
) -> dict[str, Any]:
    """``clients`` loops asking until ``duration_s`` is over (a request under way is let finish)."""
    deadline = time.monotonic() + duration_s
    numbers = itertools.count()
    results: list[dict[str, Any]] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            i = next(numbers)
            question = QUESTIONS[i % len(QUESTIONS)]
            if unique:
                question = f"{question} (request {i})"
            try:
                results.append(await api_stream(client, key, question, max_tokens))
            except httpx.HTTPError as exc:
                results.append({"error": f"{type(exc).__name__}: {exc}"})

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=api, timeout=600, limits=httpx.Limits(max_connections=clients)) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    wall = time.perf_counter() - started
    ok = [r for r in results if "error" not in r]
    return {
        "questions": "unique (every cache lookup misses)" if unique else "the 20 questions repeated",
        "wall_s": round(wall, 1),
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_rate": round((len(results) - len(ok)) / max(1, len(results)), 4),
        "error_samples": [r["error"] for r in results if "error" in r][:3],
        "requests_per_s": round(len(ok) / wall, 3),
        "cache_hits": sum(r["cached"] for r in ok),
        "latency": summary([r["total_ms"] for r in ok]) if ok else {},
        "ttft": summary([r["ttft_ms"] for r in ok]) if ok else {},
    }


class RssSampler:
    """The RSS of one process, every ``every_s`` seconds, in a thread."""

    def __init__(self, pid: int, every_s: float = 5.0) -> None:
        import threading

        self._process = psutil.Process(pid)
        self._every = every_s
        self._stop = threading.Event()
        self._started = time.monotonic()
        self.samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._process.memory_info().rss / 2**20
            except psutil.Error:
                return
            self.samples.append((time.monotonic() - self._started, rss))
            self._stop.wait(self._every)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        after_warmup = [(t, r) for t, r in self.samples if t >= 60] or self.samples
        ts = np.array([t for t, _ in after_warmup]) / 60
        rss = np.array([r for _, r in after_warmup])
        slope = float(np.polyfit(ts, rss, 1)[0]) if len(after_warmup) >= 3 else 0.0
        first_minute = [r for t, r in after_warmup if t < after_warmup[0][0] + 60]
        last_minute = [r for t, r in after_warmup if t > after_warmup[-1][0] - 60]
        return {
            "every_s": self._every,
            "samples": len(self.samples),
            "start_mb": round(self.samples[0][1], 1) if self.samples else None,
            "peak_mb": round(max(r for _, r in self.samples), 1) if self.samples else None,
            "after_warmup_first_minute_median_mb": round(statistics.median(first_minute), 1),
            "last_minute_median_mb": round(statistics.median(last_minute), 1),
            "growth_mb": round(statistics.median(last_minute) - statistics.median(first_minute), 1),
            "slope_mb_per_min": round(slope, 2),
            "series": [[round(t, 1), round(r, 1)] for t, r in self.samples],
        }


async def hit_probe(api: str, key: str, max_tokens: int) -> dict[str, Any]:
    """Each question twice, one at a time, by a caller who sees no document: the first is a miss
    (auth, embedding, search, the abstention, storage), the second a cache hit. SmolLM2's answers
    rarely cite, and flagged answers are never cached, so the soak's own hits are few."""
    misses, hits = [], []
    async with httpx.AsyncClient(base_url=api, timeout=600) as client:
        for question in QUESTIONS:
            first = await api_stream(client, key, f"{question} (probe)", max_tokens)
            second = await api_stream(client, key, f"{question} (probe)", max_tokens)
            if "error" in first or "error" in second or first["cached"] or not second["cached"]:
                return {"error": f"unexpected probe result: {first} / {second}"}
            misses.append(first["total_ms"])
            hits.append(second["total_ms"])
    return {"questions": len(QUESTIONS), "miss": summary(misses), "hit": summary(hits)}


def soak(api_env: dict[str, str], work: Path, key: str, blind_key: str, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh API process (cache on, rate limits off: one tenant drives the load) for the soak."""
    proc, api = serve_api({**api_env, "SOURCEBOOK_ANSWER_CACHE": "true"}, _free_port(), work / "api-soak.log")
    try:
        sampler = RssSampler(proc.pid)
        half = args.soak_s / 2
        log(f"soak: {args.soak_clients} clients for {args.soak_s:.0f} s (unique questions, then repeated ones)")
        misses = asyncio.run(soak_phase(api, key, args.soak_clients, half, args.max_tokens, unique=True))
        repeats = asyncio.run(soak_phase(api, key, args.soak_clients, half, args.max_tokens, unique=False))
        rss = sampler.stop()
        exited = proc.poll()
        probe = asyncio.run(hit_probe(api, blind_key, args.max_tokens))
    finally:
        proc.terminate()
        proc.wait(30)
    total = misses["requests"] + repeats["requests"]
    errors = misses["errors"] + repeats["errors"]
    return {
        "clients": args.soak_clients,
        "duration_s": args.soak_s,
        "requests": total,
        "errors": errors,
        "error_rate": round(errors / max(1, total), 4),
        "api_exited_during_soak": exited is not None,
        "cache_cold": misses,
        "cache_warm": repeats,
        "cache_warm_vs_cold_p50": round(repeats["latency"]["p50_ms"] / misses["latency"]["p50_ms"], 3)
        if misses["latency"] and repeats["latency"]
        else None,
        "api_rss": rss,
        "cache_hit_probe": probe,
    }


def _free_port() -> int:
    """A port nothing listens on now (other servers on this machine may hold the usual ones)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_api(env: dict[str, str], port: int, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`sourcebook serve` as a subprocess, once it answers /health; returns it and its base URL."""
    proc = subprocess.Popen(
        [SOURCEBOOK, "serve", "--port", str(port)], env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    api = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{api}/health", proc)
    except BaseException:
        proc.terminate()
        proc.wait(30)
        raise
    return proc, api


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
    parser.add_argument("--soak-s", type=float, default=600, help="soak duration in seconds (0: no soak)")
    parser.add_argument("--soak-clients", type=int, default=16)
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
    llm_port, api_port = _free_port(), _free_port()
    llm = llm_server.start(
        base_settings,
        args.model,
        port=llm_port,
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
            # Sees no document: its answers are abstentions, which are cacheable (see soak's hit probe).
            blind_key = create_key(
                conn, tenant_id=TENANT, name="blind", scopes=["ask"], groups=["nobody"], pepper=PEPPER
            ).token
        prompts = final_prompts(settings, QUESTIONS)
        api_env = {
            **env,
            "SOURCEBOOK_LLM_BASE_URL": llm.url,
            "SOURCEBOOK_RATE_LIMITS_ENABLED": "false",
            "SOURCEBOOK_ANSWER_CACHE": "false",
        }
        api_proc, api = serve_api(api_env, api_port, work / "api.log")
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
        llm = llm_server.start(
            base_settings, args.model, port=llm_port, log_path=work / "vllm-2.log", ready_timeout_s=900
        )
        result["throughput_prefix_caching"] = True
        for clients in (int(c) for c in args.clients.split(",")):
            log(f"throughput: {clients} client(s)")
            result["throughput"].append(
                asyncio.run(throughput(api, key, clients, max(16, clients * args.requests_per_client), args.max_tokens))
            )
        api_proc.terminate()
        api_proc.wait(30)
        api_proc = None
        if args.soak_s > 0:
            result["soak"] = soak(api_env, work, key, blind_key, args)
        added = result["overhead"]["added_total"].get("p50_ms")
        result["targets_met"] = {
            # None when no answer came out the same length both ways (the canary line differs per request).
            "added_p50_le_150ms": None if added is None else added <= 150,
            "no_errors": result["overhead"]["errors"] == 0
            and all(t["errors"] == 0 for t in result["throughput"])
            and result.get("soak", {}).get("errors", 0) == 0,
        }
        if "soak" in result:
            result["targets_met"]["soak_rss_growth_under_5_percent"] = (
                result["soak"]["api_rss"]["growth_mb"]
                <= 0.05 * result["soak"]["api_rss"]["after_warmup_first_minute_median_mb"]
            )
    finally:
        if api_proc is not None:
            api_proc.terminate()
            api_proc.wait(30)
        llm.stop()
    out = BENCH / "results" / f"answer-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    shown = {k: v for k, v in result.items() if k not in {"overhead", "soak"}}
    shown["overhead"] = {k: v for k, v in result["overhead"].items() if k != "per_question"}
    if "soak" in result:
        shown["soak"] = result["soak"] | {
            "api_rss": {k: v for k, v in result["soak"]["api_rss"].items() if k != "series"}
        }
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    main()
