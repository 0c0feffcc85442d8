"""The model server's prompt and decode rates by dtype and CPU binding: vLLM started once per
configuration (`sourcebook.llm.server.start`, as `sourcebook llm serve` does), then the start-up
measurement (`sourcebook.llm.speed.measure`) repeated. Prints JSON and writes bench/results/llm-speed-*.json.

    .venv/bin/python bench/llm_speed.py --model small --dtypes bfloat16,float32 --binds vllm,all --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sourcebook.llm import server as llm_server  # noqa: E402
from sourcebook.llm.server import read_cpu_flags  # noqa: E402
from sourcebook.llm.speed import measure  # noqa: E402
from sourcebook.settings import load_settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(model: str, dtype: str, bind: str, repeat: int, logs: Path) -> dict[str, object]:
    settings = load_settings(llm_dtype=dtype, llm_cpu_omp_bind=bind)
    port = free_port()
    server = llm_server.start(settings, model, port=port, log_path=logs / f"vllm-{dtype}-{bind}.log")
    try:
        measure(server.url, server.model)  # warm-up: the first request pays one-off costs
        speeds = [measure(server.url, server.model) for _ in range(repeat)]
    finally:
        server.stop()
    return {
        "dtype": dtype,
        "bind": bind,
        "prompt_tokens": speeds[0].prompt_tokens,
        "decode_tokens": speeds[0].decode_tokens,
        "prompt_tokens_s_median": statistics.median(s.prompt_tokens_s for s in speeds),
        "decode_tokens_s_median": statistics.median(s.decode_tokens_s for s in speeds),
        "prompt_tokens_s": [s.prompt_tokens_s for s in speeds],
        "decode_tokens_s": [s.decode_tokens_s for s in speeds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="small")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--binds", default="vllm", help="llm_cpu_omp_bind values, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = ROOT / "bench" / ".cache" / "logs" / f"llm-speed-{stamp}"
    flags = read_cpu_flags()
    results = [
        run(args.model, dtype, bind, args.repeat, logs)
        for dtype in args.dtypes.split(",")
        for bind in args.binds.split(",")
    ]
    report = {
        "model": args.model,
        "cpu_bf16": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "runs": results,
        "when": stamp,
    }
    out = ROOT / "bench" / "results" / f"llm-speed-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
