"""Answering a conversation: rewrite → retrieve → prompt → generate (streamed, citations resolved
on the fly) → guards → store the provenance. Yields events; the API and ``sourcebook ask`` render them.

When no model endpoint answers before the first token, the answer is extractive: the top passages
quoted, each cited, labelled as such. When the model stops mid-answer, what arrived is kept and the
verdict says ``incomplete``. No passages for the caller → the abstention, without calling a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

import anyio
from psycopg_pool import ConnectionPool

from retrieval.pipeline import Retrieval, RetrievalPipeline, clean_query
from retrieval.types import Caller, Candidate
from serving.citations import CitationStream
from serving.guards import judge
from serving.prompts import ABSTAIN, PromptTemplate, answer_messages, fit_passages
from serving.provenance import Conn, store_answer
from serving.rewrite import Standalone, standalone_question
from serving.types import (
    AnswerRecord,
    ChatModel,
    Citation,
    Draft,
    GenerationParams,
    Guard,
    Message,
    Outcome,
    Retrieved,
    Source,
)
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

log = logging.getLogger(__name__)

EXTRACTIVE_NOTE = "The language model is unavailable right now, so these are the most relevant passages, quoted:"
_EXTRACTIVE_PASSAGES = 3
_EXTRACTIVE_CHARS = 320


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    tenant_id: str
    groups: tuple[str, ...]
    api_key_id: str | None
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class Started:
    answer_id: uuid.UUID
    standalone: Standalone
    search_text: str
    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True, slots=True)
class Finished:
    record: AnswerRecord


Event = Started | Piece | Finished


@dataclass(slots=True)
class _Generation:
    outcome: Outcome = "answer"
    model: str = ""
    endpoint: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def split_conversation(messages: Sequence[Message], *, max_history: int) -> tuple[str, tuple[Message, ...]]:
    """The question (the last message, from the user) and the turns before it; the client's system
    messages are ignored: the instructions are ours."""
    turns = [m for m in messages if m.role != "system"]
    if not turns or turns[-1].role != "user":
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            "the last message must come from the user",
            hint='end `messages` with {"role": "user", "content": "<question>"}',
        )
    question = clean_query(" ".join(turns[-1].content.split()), what="question")
    return question, tuple(turns[:-1][-max_history:])


def history_hash(history: Sequence[Message]) -> str | None:
    if not history:
        return None
    wire = json.dumps([[m.role, m.content] for m in history], ensure_ascii=False)
    return hashlib.sha256(wire.encode()).hexdigest()


def to_sources(passages: Sequence[Candidate]) -> list[Source]:
    return [
        Source(
            number=i,
            chunk_id=p.chunk_id,
            chunk_ids=p.merged_chunk_ids or (p.chunk_id,),
            document_id=p.document_id,
            title=p.title or p.source_uri,
            uri=p.source_uri,
            page=p.page,
            text=p.text,
            score=p.rerank_score if p.rerank_score is not None else p.score,
            date=p.document_date,
        )
        for i, p in enumerate(passages, start=1)
    ]


def extractive_answer(sources: Sequence[Source]) -> str:
    lines = [EXTRACTIVE_NOTE, ""]
    for source in sources[:_EXTRACTIVE_PASSAGES]:
        text = " ".join(source.text.split())
        if len(text) > _EXTRACTIVE_CHARS:
            text = text[: _EXTRACTIVE_CHARS - 1] + "…"
        lines.append(f"- {source.title}: “{text}” [{source.number}]")
    return "\n".join(lines)


def is_abstention(text: str) -> bool:
    normalized = " ".join(text.split()).casefold().replace("’", "'")
    return normalized.startswith(ABSTAIN.casefold().rstrip("."))


class AnswerService:
    def __init__(
        self,
        *,
        settings: Settings,
        pool: ConnectionPool[Conn],
        retrieval: RetrievalPipeline,
        model: ChatModel,
        guards: Sequence[Guard],
        answer_prompt: PromptTemplate,
        rewrite_prompt: PromptTemplate,
    ) -> None:
        self.settings = settings
        self._pool = pool
        self._retrieval = retrieval
        self._model = model
        self._guards = tuple(guards)
        self.answer_prompt = answer_prompt
        self._rewrite_prompt = rewrite_prompt

    async def run(self, request: AnswerRequest) -> AsyncGenerator[Event, None]:
        started = time.perf_counter()
        question, history = split_conversation(request.messages, max_history=self.settings.max_history_messages)
        timings: dict[str, float] = {}
        mark = time.perf_counter()
        standalone = await standalone_question(self._model, self._rewrite_prompt, question, history)
        timings["standalone"] = _ms(mark)
        retrieval = await anyio.to_thread.run_sync(partial(self._retrieve, standalone.text, request))
        timings.update(retrieval.timings_ms)
        sources = fit_passages(
            to_sources(retrieval.passages),
            max_passages=self.settings.answer_max_passages,
            max_chars=self.settings.answer_context_chars,
        )
        answer_id = uuid.uuid4()
        yield Started(answer_id, standalone, retrieval.rewrite.text, tuple(sources))
        citations = CitationStream(sources)
        generation = _Generation()
        async with aclosing(self._generate(question, sources, citations, request, generation)) as pieces:
            async for piece in pieces:
                yield piece
        timings.update(generation.timings)
        tail = citations.close()
        if tail.text:
            yield Piece(tail.text, tail.citations)
        if generation.outcome == "answer" and is_abstention(citations.text):
            generation.outcome = "abstain"
        draft = Draft(
            question,
            citations.text,
            tuple(sources),
            tuple(citations.citations.values()),
            tuple(citations.dropped),
            generation.outcome,
        )
        verdict = judge(draft, self._guards)
        timings["total"] = _ms(started)
        record = AnswerRecord(
            id=answer_id,
            tenant_id=request.tenant_id,
            api_key_id=request.api_key_id,
            question=question,
            history_hash=history_hash(history),
            history_turns=len(history),
            rewrite=_rewrite_record(standalone, retrieval),
            retrieved=tuple(_retrieved(s, c) for s, c in zip(sources, retrieval.passages, strict=False)),
            citations=draft.citations,
            text=draft.text,
            verdict=verdict,
            model=generation.model,
            endpoint=generation.endpoint,
            prompt_version=self.answer_prompt.version,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            timings_ms=timings,
        )
        await anyio.to_thread.run_sync(self._store, record)
        yield Finished(record)

    def _retrieve(self, text: str, request: AnswerRequest) -> Retrieval:
        return self._retrieval.retrieve(
            text, caller=Caller(request.tenant_id, request.groups), top_k=self.settings.answer_max_passages
        )

    def _store(self, record: AnswerRecord) -> None:
        with self._pool.connection() as conn:
            store_answer(conn, record)

    async def _generate(
        self,
        question: str,
        sources: Sequence[Source],
        citations: CitationStream,
        request: AnswerRequest,
        generation: _Generation,
    ) -> AsyncGenerator[Piece, None]:
        if not sources:
            generation.outcome = "abstain"
            generation.model = "none (no passages)"
            yield Piece(citations.feed(ABSTAIN).text)
            return
        messages = answer_messages(
            self.answer_prompt, assistant=self.settings.assistant_name, question=question, sources=sources
        )
        params = GenerationParams(
            max_tokens=request.max_tokens or self.settings.answer_max_tokens,
            temperature=self.settings.answer_temperature if request.temperature is None else request.temperature,
        )
        mark = time.perf_counter()
        try:
            async with aclosing(self._model.stream("answer", messages, params)) as deltas:
                async for delta in deltas:
                    if "first_token" not in generation.timings and delta.text:
                        generation.timings["first_token"] = _ms(mark)
                    generation.model = delta.model or generation.model
                    generation.endpoint = delta.endpoint or generation.endpoint
                    generation.prompt_tokens = delta.prompt_tokens or generation.prompt_tokens
                    generation.completion_tokens = delta.completion_tokens or generation.completion_tokens
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
                emission = citations.feed(extractive_answer(sources))
                yield Piece(emission.text, emission.citations)
        generation.timings["generate"] = _ms(mark)


def _rewrite_record(standalone: Standalone, retrieval: Retrieval) -> dict[str, str]:
    return {
        "standalone": standalone.text,
        "method": standalone.method,
        "search_text": retrieval.rewrite.text,
        "rules": retrieval.rewrite.method,
    }


def _retrieved(source: Source, candidate: Candidate) -> Retrieved:
    return Retrieved(
        source.number,
        source.chunk_ids,
        source.document_id,
        source.score,
        candidate.bm25_rank,
        candidate.vector_rank,
        candidate.rerank_score,
    )


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
