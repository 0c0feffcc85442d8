"""Generating an answer's text: the prompt, the model's stream (one or two steps), and the fallbacks.

A two-step template first asks the model which passages answer (0: none), then asks for the answer
from the passage it named, in the same conversation so that the server's prefix cache serves it. The
first token's deadline (``answer_first_token_s``) covers both steps together: the second gets what the
first left. No passages → the abstention without a model; no endpoint before the deadline → the
extractive answer; the model stopping mid-answer → what arrived, marked incomplete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from answer.citations import CitationStream
from answer.extractive import extractive_answer
from answer.prompts import ABSTAIN, QUOTE_CHARS, PromptTemplate, answer_messages, answered_from, follow_messages
from answer.types import ChatModel, Delta, GenerationParams, Message, Outcome, Piece, Source
from sourcebook.errors import ErrorCode, SourcebookError

log = logging.getLogger(__name__)
# A few passage numbers ("1, 3"), or 0, and room for a stray "Passage" before them.
_SELECT_TOKENS = 8
# The least time the answer step is given after the selection step, whatever the deadline left.
_MIN_ANSWER_WAIT_S = 1.0
# The question's length the context budget already allows for (sourcebook.llm.speed's prompt
# overhead), and the passages' least budget however long the question (one short passage).
QUESTION_ALLOWANCE_CHARS = 300
MIN_PASSAGE_CHARS = 400


@dataclass(slots=True)
class Generation:
    """What the model calls of one answer produced: model, endpoint, tokens (both steps), timings."""

    outcome: Outcome = "answer"
    model: str = ""
    endpoint: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Pieces of text received: the completion's token count when the model's own count never came.
    deltas: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # When generation began: ``first_token`` and ``first_shown`` count from here.
    started: float = field(default_factory=time.perf_counter)

    def take(self, delta: Delta, offset: tuple[int, int] = (0, 0)) -> None:
        """Record a delta's model, endpoint and token counts; ``offset`` is what earlier steps spent."""
        self.model = delta.model or self.model
        self.endpoint = delta.endpoint or self.endpoint
        if delta.prompt_tokens:
            self.prompt_tokens = offset[0] + delta.prompt_tokens
        if delta.completion_tokens:
            self.completion_tokens = offset[1] + delta.completion_tokens


@dataclass(frozen=True, slots=True)
class Ask:
    """One answer's generation request: the question the model sees, the passages, the parameters,
    and a line for the end of the system prompt (the guards' canary)."""

    question: str
    sources: tuple[Source, ...]
    params: GenerationParams
    system_note: str = ""


def ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


class Drafter:
    """Streams an answer's pieces through the citation state machine."""

    def __init__(self, model: ChatModel, template: PromptTemplate, *, assistant: str) -> None:
        self._model = model
        self.template = template
        self._assistant = assistant

    async def stream(self, ask: Ask, citations: CitationStream, generation: Generation) -> AsyncGenerator[Piece, None]:
        if not ask.sources:
            generation.outcome = "abstain"
            generation.model = "none (no passages)"
            yield Piece(citations.feed(ABSTAIN).text)
            return
        messages = self._messages(ask)
        mark = generation.started = time.perf_counter()
        try:
            params = ask.params
            if self.template.follow is not None:
                reply = await self._select(messages, params, generation)
                numbers = answered_from(self.template, reply, ask.sources, ask.question)
                if not numbers:
                    generation.outcome = "abstain"
                    yield Piece(citations.feed(ABSTAIN).text)
                    return
                messages = follow_messages(
                    self.template, messages, reply=reply, numbers=numbers, question=ask.question, sources=ask.sources
                )
                params = _remaining(params, since=mark)
            spent = (generation.prompt_tokens, generation.completion_tokens)
            async with aclosing(self._model.stream("answer", messages, params)) as deltas:
                async for delta in deltas:
                    if delta.text:
                        generation.deltas += 1
                        generation.timings.setdefault("first_token", ms(mark))
                    generation.take(delta, spent)
                    emission = citations.feed(delta.text)
                    if emission.text or emission.citations:
                        yield Piece(emission.text, emission.citations)
        except SourcebookError as exc:
            if exc.code is not ErrorCode.MODEL_UNAVAILABLE:
                raise
            if citations.text or generation.completion_tokens:
                log.warning("the model stopped mid-answer: the answer is marked incomplete")
                generation.outcome = "incomplete"
            else:
                log.warning("no model endpoint answered: extractive answer from the top passages")
                generation.outcome = "extractive"
                generation.model = "extractive"
                emission = citations.feed(extractive_answer(ask.sources, self.template.neutralise))
                yield Piece(emission.text, emission.citations)

    def passage_budget(self, question: str, context_chars: int) -> int:
        return passage_budget(self.template, question, context_chars)

    def instructions(self) -> str:
        """The template's system prompt, as the model gets it (before the per-request note)."""
        return self.template.system.render(assistant=self._assistant, abstain=ABSTAIN).strip()

    def _messages(self, ask: Ask) -> list[Message]:
        messages = answer_messages(self.template, assistant=self._assistant, question=ask.question, sources=ask.sources)
        if ask.system_note and messages and messages[0].role == "system":
            # At the end of the system prompt: the fixed instructions before it stay a cached prefix.
            messages[0] = Message("system", f"{messages[0].content}\n\n{ask.system_note}")
        return messages

    async def _select(self, messages: Sequence[Message], params: GenerationParams, generation: Generation) -> str:
        """A two-step template's first step: the model names the passage that answers (0: none)."""
        mark = time.perf_counter()
        choose = GenerationParams(max_tokens=_SELECT_TOKENS, temperature=0.0, first_token_s=params.first_token_s)
        parts: list[str] = []
        async with aclosing(self._model.stream("answer", messages, choose)) as deltas:
            async for delta in deltas:
                parts.append(delta.text)
                generation.take(delta)
        generation.timings["select"] = ms(mark)
        return "".join(parts)


def passage_budget(template: PromptTemplate, question: str, context_chars: int) -> int:
    """The passages' characters for this question: the budget (``context_chars``) assumes a question
    of ordinary length; a longer one takes its extra length from the passages, twice with a two-step
    template (the answer step repeats it), so that the prompt still fits the model's window. A
    follow-up that quotes the chosen passages again takes their room (``QUOTE_CHARS``) too."""
    copies = 2 if template.follow is not None else 1
    extra = copies * max(0, len(question) - QUESTION_ALLOWANCE_CHARS) + (QUOTE_CHARS if template.quotes else 0)
    return max(MIN_PASSAGE_CHARS, context_chars - extra)


def _remaining(params: GenerationParams, *, since: float) -> GenerationParams:
    """The answer step's parameters: the first token's deadline less what the selection step took."""
    if params.first_token_s is None:
        return params
    left = params.first_token_s - (time.perf_counter() - since)
    return replace(params, first_token_s=max(left, _MIN_ANSWER_WAIT_S))
