"""Groundedness, stage 2: the local model as a Yes/No judge, one claim at a time.

The prompt is MiniCheck's shape (``Document: ... Claim: ...``, answered Yes or No), sent as a raw
prompt to the OpenAI-compatible completions endpoint (``api="completions"``, the default) or as chat
messages, which the server wraps in the model's chat template (``api="chat"``). The model writes one
token (``max_tokens=1``) and the score is P(Yes) from the logprobs the server returns for that token:
the probability mass on "Yes" against "No" among its most likely first tokens, not parsed text. On
the 75 HaluEval answers of 60 items that stage 1 let through, Qwen2.5-Coder-1.5B's AUROC was 0.63
either way; at 0.5 the raw prompt flagged fewer right answers (1.7% against 8.3%), so it is the
default (bench/README.md). When no server answers, the judge is off (``None``) rather than an error:
stage 1 stands alone. Each call is traced as a ``guard.judge`` span (model, endpoint,
P(Yes); never the claim's text).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import openai
from opentelemetry.util.types import AttributeValue

from guardrails.sentences import strip_markers
from guardrails.types import Groundedness, Passage, SentenceSupport
from sourcebook.telemetry import stage

SYSTEM = "You check whether a claim is supported by a document. Answer with one word: Yes or No."
_YES = frozenset({"yes"})
_NO = frozenset({"no"})
TOP_LOGPROBS = 10
# How long a judge whose server failed stays off before it asks again.
OFF_S = 60.0


@dataclass(frozen=True, slots=True)
class JudgeSettings:
    base_url: str
    model: str
    api: Literal["completions", "chat"] = "completions"
    timeout_s: float = 30.0
    max_document_chars: int = 4000


def prompt(document: str, claim: str, question: str = "") -> str:
    """The question whether ``claim`` follows from ``document`` (pure); a raw prompt ends with ``Answer:``."""
    asked = f"Question: {question.strip()}\n" if question.strip() else ""
    return (
        f"Document: {document.strip()}\n{asked}Claim: {claim.strip()}\n"
        "Is the claim supported by the document? Answer Yes or No.\nAnswer:"
    )


def messages(document: str, claim: str, question: str = "") -> list[dict[str, str]]:
    """The same question as chat messages (pure)."""
    user = prompt(document, claim, question).removesuffix("\nAnswer:")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def p_yes(top: Mapping[str, float]) -> float | None:
    """P(Yes) from the first token's top logprobs (token → logprob); None when neither word is there."""
    yes = sum(math.exp(lp) for token, lp in top.items() if token.strip().lower() in _YES)
    no = sum(math.exp(lp) for token, lp in top.items() if token.strip().lower() in _NO)
    if yes + no == 0.0:
        return None
    return yes / (yes + no)


def _top_logprobs(response: Any) -> dict[str, float]:
    """The first token's alternatives from a completions or a chat response."""
    logprobs = response.choices[0].logprobs if response.choices else None
    if logprobs is None:
        return {}
    if getattr(logprobs, "top_logprobs", None):  # completions: a token → logprob map per position
        return dict(logprobs.top_logprobs[0])
    content = getattr(logprobs, "content", None)
    return {alt.token: alt.logprob for alt in content[0].top_logprobs} if content else {}


class Judge:
    """Asks the model server (vLLM, OpenAI-compatible) one claim at a time."""

    def __init__(self, settings: JudgeSettings, client: openai.AsyncOpenAI | None = None) -> None:
        self.settings = settings
        self._client = client or openai.AsyncOpenAI(
            base_url=settings.base_url, api_key="EMPTY", timeout=settings.timeout_s, max_retries=0
        )
        self._off_until = 0.0
        self._model: str | None = None if settings.model == "auto" else settings.model

    @property
    def available(self) -> bool:
        """False for ``OFF_S`` after the server failed to answer: a judge in a long-lived API comes back."""
        return time.monotonic() >= self._off_until

    async def score(self, document: str, claim: str, question: str = "") -> float | None:
        """P(Yes) for the claim, or None when the server does not answer (the judge turns itself off)."""
        if not self.available:
            return None
        attributes: dict[str, AttributeValue] = {"model": self.settings.model, "endpoint": self.settings.base_url}
        with stage("guard.judge", attributes=attributes) as span:
            try:
                response = await self._ask(document[: self.settings.max_document_chars], claim, question)
            except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError) as exc:
                self._off_until = time.monotonic() + OFF_S
                span.set_attribute("judge.off", type(exc).__name__)
                return None
            score = p_yes(_top_logprobs(response))
            if score is not None:
                span.set_attribute("judge.p_yes", score)
            return score

    async def _served_model(self) -> str:
        """The model to ask: as configured, or (``auto``) the first the server serves."""
        if self._model is None:
            page = await self._client.models.list()
            self._model = page.data[0].id
        return self._model

    async def _ask(self, document: str, claim: str, question: str) -> Any:
        model = await self._served_model()
        if self.settings.api == "chat":
            return await self._client.chat.completions.create(
                model=model,
                messages=messages(document, claim, question),  # type: ignore[arg-type]
                max_tokens=1,
                temperature=0.0,
                logprobs=True,
                top_logprobs=TOP_LOGPROBS,
            )
        return await self._client.completions.create(
            model=model,
            prompt=prompt(document, claim, question),
            max_tokens=1,
            temperature=0.0,
            logprobs=TOP_LOGPROBS,
        )

    async def close(self) -> None:
        await self._client.close()


async def judge_sentences(
    judge: Judge,
    report: Groundedness,
    passages: Sequence[Passage],
    *,
    threshold: float = 0.5,
    skip_above: float = 1.0,
    question: str = "",
) -> Groundedness:
    """Stage 2 on what stage 1 cannot decide: every sentence without a missing number, date or name
    (those are unsupported for certain) whose stage-1 score is below ``skip_above``. Each is judged
    against the passages it cites (all of them when it cites none); its score becomes P(Yes), and it
    is supported when that is at least ``threshold``. Off (the report unchanged) without a server."""
    by_number = {p.number: p.text for p in passages}
    out: list[SentenceSupport] = []
    for sentence in report.sentences:
        if sentence.missing_facts or sentence.score >= skip_above or not judge.available:
            out.append(sentence)
            continue
        cited = [by_number[n] for n in sentence.cited if n in by_number] or list(by_number.values())
        verdict = await judge.score("\n\n".join(cited), strip_markers(sentence.sentence), question)
        if verdict is None:
            out.append(sentence)
        else:
            out.append(replace(sentence, score=verdict, judge=verdict, supported=verdict >= threshold))
    return Groundedness(tuple(out))
