"""How fast the model server really is, and what that means for answers.

``measure`` sends one short generation (a prompt of ~300 tokens made unique, so vLLM's prefix cache
can't skip its prefill; 32 tokens generated with the end-of-sequence token ignored) and reads both
rates off the stream: prompt tokens per second up to the first token, decode tokens per second after
it. ``sourcebook llm serve`` measures at every (re)start and records the figures with the server's
status; ``doctor`` prints them, and the answer's context budget is derived from them.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass

import httpx

from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

# Below this an answer of a few hundred tokens takes over a minute: say so, and name the options.
SLOW_DECODE_TOKENS_S = 5.0
# Characters per token of English prose for these tokenizers (SmolLM2, Qwen2.5): ~4; 3.5 errs short.
CHARS_PER_TOKEN = 3.5
# The instructions and the question around the passages, in tokens (prompts/answer/v2: ~250).
PROMPT_OVERHEAD_TOKENS = 300
FALLBACK_CONTEXT_CHARS = 3600
MIN_CONTEXT_CHARS = 1000
_FILLER = "The quarterly report lists travel, equipment and training costs for each team in the company. "
_DECODE_TOKENS = 32


@dataclass(frozen=True, slots=True)
class Speed:
    prompt_tokens_s: float
    decode_tokens_s: float
    prompt_tokens: int
    decode_tokens: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def of(cls, data: object) -> Speed | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                float(data["prompt_tokens_s"]),
                float(data["decode_tokens_s"]),
                int(data["prompt_tokens"]),
                int(data["decode_tokens"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def measure(base_url: str, model: str, *, timeout_s: float = 120.0) -> Speed:
    """One streamed completion; raises ``model_unavailable`` when the server can't give it."""
    body = {
        "model": model,
        "prompt": f"[{secrets.token_hex(8)}] " + _FILLER * 20 + "\nSummary:",
        "max_tokens": _DECODE_TOKENS,
        "temperature": 0.0,
        "ignore_eos": True,  # vLLM: always the full count, so the decode rate is over 32 tokens
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    arrivals: list[float] = []
    usage: dict[str, int] = {}
    sent = time.perf_counter()
    try:
        with httpx.stream("POST", base_url + "/completions", json=body, timeout=timeout_s) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0].get("text"):
                    arrivals.append(time.perf_counter())
                usage = chunk.get("usage") or usage
    except (httpx.HTTPError, ValueError) as exc:
        raise SourcebookError(
            ErrorCode.MODEL_UNAVAILABLE, f"could not measure the model server's speed: {type(exc).__name__}"
        ) from exc
    return rates(sent, arrivals, usage)


def rates(sent: float, arrivals: list[float], usage: dict[str, int]) -> Speed:
    """The two rates from the send time, the arrival times of the text chunks and the usage."""
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    if len(arrivals) < 2 or not prompt or completion < 2:
        raise SourcebookError(ErrorCode.MODEL_UNAVAILABLE, "the speed measurement got too short a reply")
    decode_s = max(arrivals[-1] - arrivals[0], 1e-6)
    return Speed(
        prompt_tokens_s=round(prompt / max(arrivals[0] - sent, 1e-6), 1),
        decode_tokens_s=round((completion - 1) / decode_s, 1),
        prompt_tokens=prompt,
        decode_tokens=completion,
    )


def context_chars(speed: Speed | None, settings: Settings, *, max_model_len: int = 2048) -> int:
    """The passages' budget in characters: ``answer_context_chars`` when set; else what prefills in
    half the first-token deadline, that half shared by the requests admitted at once (they prefill on
    the same cores), within what the context window leaves beside the answer's tokens."""
    if settings.answer_context_chars:
        return settings.answer_context_chars
    if speed is None:
        return FALLBACK_CONTEXT_CHARS
    concurrent = max(settings.llm_max_in_flight, 1)
    tokens = speed.prompt_tokens_s * settings.answer_first_token_s / (2 * concurrent) - PROMPT_OVERHEAD_TOKENS
    window = max_model_len - settings.answer_max_tokens - PROMPT_OVERHEAD_TOKENS
    return int(max(MIN_CONTEXT_CHARS, min(tokens, window) * CHARS_PER_TOKEN))


def verdict(speed: Speed, settings: Settings) -> str | None:
    """None when the speed is fine; else the plain statement and the options."""
    if speed.decode_tokens_s >= SLOW_DECODE_TOKENS_S:
        return None
    seconds = settings.answer_max_tokens / max(speed.decode_tokens_s, 0.1)
    return (
        f"slow: {speed.decode_tokens_s:g} tokens/s, so an answer of {settings.answer_max_tokens} tokens takes "
        f"~{seconds:.0f} s. Options: the small model (`--model small`, plumbing only), a GPU, "
        "fewer passages (SOURCEBOOK_ANSWER_MAX_PASSAGES) or shorter answers (SOURCEBOOK_ANSWER_MAX_TOKENS)"
    )


def describe(speed: Speed) -> str:
    return (
        f"decodes {speed.decode_tokens_s:g} tokens/s, reads prompts at {speed.prompt_tokens_s:g} tokens/s "
        f"(measured at start: {speed.prompt_tokens} prompt tokens, {speed.decode_tokens} generated)"
    )
