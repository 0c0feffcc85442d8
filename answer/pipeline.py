"""Answering a conversation: rewrite → retrieve → prompt → generate (streamed, citations resolved
on the fly) → guards → store the provenance. Yields events; the API and ``sourcebook ask`` render them.

When no model endpoint answers before the first token's deadline (``answer_first_token_s``), the
answer is extractive: the top passages quoted, each cited, labelled as such. When the model stops
mid-answer, what arrived is kept and the verdict says ``incomplete``. No passages for the caller →
the abstention, without calling a model.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

import anyio
import psycopg
from opentelemetry import trace
from opentelemetry.trace import Span
from psycopg_pool import ConnectionPool

from answer.cache import Probe, cacheable, probe, remember, replayed, standalone_of
from answer.citations import CitationStream
from answer.conversation import history_hash, split_conversation
from answer.extractive import extractive_answer
from answer.prompts import (
    ABSTAIN,
    PromptTemplate,
    answer_messages,
    chosen_passages,
    fit_passages,
    follow_messages,
    newest_first,
)
from answer.standalone import standalone_question
from answer.store import StoredAnswer, store_answer, usage_event, without_question_text
from answer.types import (
    AnswerRecord,
    AnswerRequest,
    ChatModel,
    Draft,
    Event,
    Finished,
    GenerationParams,
    Guard,
    Message,
    Outcome,
    Piece,
    Retrieved,
    Retriever,
    Source,
    Standalone,
    Started,
    Verdict,
)
from answer.verdict import ABANDONED, is_abstention, judge
from retrieval.pipeline import Retrieval
from retrieval.types import Caller, Candidate
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.llm.speed import FALLBACK_CONTEXT_CHARS
from sourcebook.settings import Settings
from sourcebook.telemetry import TRACER_NAME, stage
from sourcebook.usage import record_usage

log = logging.getLogger(__name__)
# A few passage numbers ("1, 3"), or 0, and room for a stray "Passage" before them.
_SELECT_TOKENS = 8


@dataclass(slots=True)
class _Turn:
    """One answer in the making: what every stage reads and adds to."""

    request: AnswerRequest
    question: str
    history: tuple[Message, ...]
    root: Span
    context_chars: int  # the passages' budget, fixed for the turn: the cache key covers it
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    cache: Probe | None = None


@dataclass(slots=True)
class _Generation:
    outcome: Outcome = "answer"
    model: str = ""
    endpoint: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Pieces of text received: the completion's token count when the model's own count never came.
    deltas: int = 0
    timings: dict[str, float] = field(default_factory=dict)


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
            section=" > ".join(h for h in p.heading_path if h != p.title),
        )
        for i, p in enumerate(passages, start=1)
    ]


class AnswerService:
    def __init__(
        self,
        *,
        settings: Settings,
        pool: ConnectionPool[Conn],
        retrieval: Retriever,
        model: ChatModel,
        guards: Sequence[Guard],
        answer_prompt: PromptTemplate,
        rewrite_prompt: PromptTemplate,
        on_record: Callable[[AnswerRecord], None] | None = None,
        context_chars: Callable[[], int] | None = None,
    ) -> None:
        """``on_record`` sees every stored answer (in a worker thread): metrics, token limits.
        ``context_chars`` gives the passages' budget (default: ``answer_context_chars``, or 3600)."""
        self.settings = settings
        self._pool = pool
        self._retrieval = retrieval
        self._model = model
        self._guards = tuple(guards)
        self.answer_prompt = answer_prompt
        self._rewrite_prompt = rewrite_prompt
        self._on_record = on_record
        self._context_chars = context_chars or (lambda: settings.answer_context_chars or FALLBACK_CONTEXT_CHARS)

    async def run(self, request: AnswerRequest) -> AsyncGenerator[Event, None]:
        question, history = split_conversation(request.messages, max_history=self.settings.max_history_messages)
        root = trace.get_tracer(TRACER_NAME).start_span("answer", attributes={"sourcebook.route": request.route})
        turn = _Turn(request, question, history, root, self._context_chars())
        try:
            if self.settings.answer_cache:
                with stage("cache", turn.timings, parent=root):
                    turn.cache = await anyio.to_thread.run_sync(self._cache_lookup, turn)
                root.set_attribute("sourcebook.cache_hit", turn.cache.hit is not None)
            if turn.cache is not None and turn.cache.hit is not None:
                events = self._replay(turn, turn.cache.hit)
            else:
                events = self._answer(turn)
            async with aclosing(events):
                async for event in events:
                    yield event
        finally:
            root.end()

    async def _answer(self, turn: _Turn) -> AsyncGenerator[Event, None]:
        with stage("standalone", turn.timings, parent=turn.root):
            standalone = await standalone_question(
                self._model,
                self._rewrite_prompt,
                turn.question,
                turn.history,
                deadline_s=self.settings.rewrite_deadline_s,
            )
        retrieval = await anyio.to_thread.run_sync(partial(self._retrieve, standalone.text, turn))
        turn.timings.update(retrieval.timings_ms)
        sources = fit_passages(
            to_sources(retrieval.passages),
            max_passages=self.settings.answer_max_passages,
            max_chars=turn.context_chars,
        )
        answer_id = uuid.uuid4()
        turn.root.set_attribute("sourcebook.answer_id", str(answer_id))
        citations = CitationStream(sources)
        generation = _Generation()

        def record(verdict: Verdict) -> AnswerRecord:
            turn.timings.update(generation.timings)
            turn.timings["total"] = _ms(turn.started)
            return AnswerRecord(
                id=answer_id,
                tenant_id=turn.request.tenant_id,
                api_key_id=turn.request.api_key_id,
                question=turn.question,
                history_hash=history_hash(turn.history),
                history_turns=len(turn.history),
                rewrite=_rewrite_record(standalone, retrieval),
                retrieved=tuple(_retrieved(s, c) for s, c in zip(sources, retrieval.passages, strict=False)),
                citations=tuple(citations.citations.values()),
                text=citations.text,
                verdict=verdict,
                model=generation.model,
                endpoint=generation.endpoint,
                prompt_version=self.answer_prompt.version,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens or generation.deltas,
                timings_ms=turn.timings,
            )

        yield Started(answer_id, standalone, retrieval.rewrite.text, tuple(sources))
        stored = False
        try:
            with stage("generate", generation.timings, parent=turn.root, attach=False) as span:
                async with aclosing(self._generate(turn, sources, citations, generation)) as pieces:
                    async for piece in pieces:
                        yield piece
                span.set_attributes(
                    {
                        "sourcebook.model": generation.model,
                        "sourcebook.prompt_tokens": generation.prompt_tokens,
                        "sourcebook.completion_tokens": generation.completion_tokens,
                    }
                )
            tail = citations.close()
            if tail.text:
                yield Piece(tail.text, tail.citations)
            with stage("checks", turn.timings, parent=turn.root):
                if generation.outcome == "answer" and is_abstention(citations.text):
                    generation.outcome = "abstain"
                draft = Draft(
                    turn.question,
                    citations.text,
                    tuple(sources),
                    tuple(citations.citations.values()),
                    tuple(citations.dropped),
                    generation.outcome,
                )
                verdict = judge(draft, self._guards)
            turn.root.set_attribute("sourcebook.verdict", verdict.outcome)
            final = record(verdict)
            with stage("store", parent=turn.root):
                await anyio.to_thread.run_sync(self._store, final, turn)
            stored = True
            yield Finished(final)
        finally:
            if not stored:
                # The client left, or the stream failed, mid-answer: what was generated is still stored,
                # counted in the usage and against the key's tokens, and marked incomplete.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._store_abandoned, record(ABANDONED), turn)

    async def _replay(self, turn: _Turn, hit: StoredAnswer) -> AsyncGenerator[Event, None]:
        turn.root.set_attribute("sourcebook.answer_id", str(hit.id))
        yield Started(hit.id, standalone_of(hit), str(hit.rewrite.get("search_text", hit.question)), ())
        turn.timings["total"] = _ms(turn.started)
        record = replayed(hit, api_key_id=turn.request.api_key_id, timings_ms=turn.timings)
        yield Piece(record.text, record.citations)
        with stage("store", parent=turn.root):
            await anyio.to_thread.run_sync(self._store_usage, record, turn.request.route)
        yield Finished(record)

    def _cache_lookup(self, turn: _Turn) -> Probe:
        with self._pool.connection() as conn:
            return probe(
                conn,
                self.settings.model_copy(update={"answer_context_chars": turn.context_chars}),
                tenant_id=turn.request.tenant_id,
                groups=turn.request.groups,
                question=turn.question,
                history=turn.history,
                prompt_versions=(self.answer_prompt.version, self._rewrite_prompt.version),
                max_tokens=turn.request.max_tokens,
                temperature=turn.request.temperature,
            )

    def _retrieve(self, text: str, turn: _Turn) -> Retrieval:
        with trace.use_span(turn.root, end_on_exit=False):
            caller = Caller(turn.request.tenant_id, turn.request.groups)
            return self._retrieval.retrieve(text, caller=caller, top_k=self.settings.answer_max_passages)

    def _store(self, record: AnswerRecord, turn: _Turn) -> None:
        """The answer, its usage and (when it qualifies) its cache entry, in one transaction."""
        cache = turn.cache
        stored = record
        if record.tenant_id in self.settings.hashed_question_tenants:
            stored = without_question_text(record, salt=self.settings.key_pepper.get_secret_value())
        with self._pool.connection() as conn, conn.transaction():
            store_answer(conn, stored)
            record_usage(conn, usage_event(record, route=turn.request.route), self.settings.prices)
            if cache is not None and cacheable(record):
                remember(conn, cache, record, ttl_s=self.settings.answer_cache_ttl_s)
        self._recorded(record)

    def _store_abandoned(self, record: AnswerRecord, turn: _Turn) -> None:
        try:
            self._store(record, turn)
        except (SourcebookError, psycopg.Error):
            log.warning("could not store an abandoned answer", extra={"answer_id": str(record.id)})

    def _store_usage(self, record: AnswerRecord, route: str) -> None:
        with self._pool.connection() as conn:
            record_usage(conn, usage_event(record, route=route), self.settings.prices)
        self._recorded(record)

    def _recorded(self, record: AnswerRecord) -> None:
        if self._on_record is None:
            return
        try:
            self._on_record(record)
        except Exception:
            log.exception("the stored-answer hook failed", extra={"answer_id": str(record.id)})

    async def _select(self, messages: Sequence[Message], params: GenerationParams, generation: _Generation) -> str:
        """A two-step template's first step: the model names the passage that answers (0: none)."""
        mark = time.perf_counter()
        choose = GenerationParams(max_tokens=_SELECT_TOKENS, temperature=0.0, first_token_s=params.first_token_s)
        parts: list[str] = []
        async with aclosing(self._model.stream("answer", messages, choose)) as deltas:
            async for delta in deltas:
                parts.append(delta.text)
                generation.model = delta.model or generation.model
                generation.endpoint = delta.endpoint or generation.endpoint
                generation.prompt_tokens = delta.prompt_tokens or generation.prompt_tokens
                generation.completion_tokens = delta.completion_tokens or generation.completion_tokens
        generation.timings["select"] = _ms(mark)
        return "".join(parts)

    async def _generate(
        self, turn: _Turn, sources: Sequence[Source], citations: CitationStream, generation: _Generation
    ) -> AsyncGenerator[Piece, None]:
        question, request = turn.question, turn.request
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
            first_token_s=self.settings.answer_first_token_s,
        )
        mark = time.perf_counter()
        try:
            if self.answer_prompt.follow is not None:
                reply = await self._select(messages, params, generation)
                numbers = newest_first(chosen_passages(reply, sources), sources)
                if not numbers:
                    generation.outcome = "abstain"
                    yield Piece(citations.feed(ABSTAIN).text)
                    return
                messages = follow_messages(
                    self.answer_prompt, messages, reply=reply, numbers=numbers, question=question
                )
            selected = (generation.prompt_tokens, generation.completion_tokens)
            async with aclosing(self._model.stream("answer", messages, params)) as deltas:
                async for delta in deltas:
                    if delta.text:
                        generation.deltas += 1
                        if "first_token" not in generation.timings:
                            generation.timings["first_token"] = _ms(mark)
                    generation.model = delta.model or generation.model
                    generation.endpoint = delta.endpoint or generation.endpoint
                    if delta.prompt_tokens:
                        generation.prompt_tokens = selected[0] + delta.prompt_tokens
                    if delta.completion_tokens:
                        generation.completion_tokens = selected[1] + delta.completion_tokens
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
                emission = citations.feed(extractive_answer(sources, self.answer_prompt.neutralise))
                yield Piece(emission.text, emission.citations)


def _rewrite_record(standalone: Standalone, retrieval: Retrieval) -> dict[str, str]:
    return {
        "standalone": standalone.text,
        "method": standalone.method,
        "search_text": retrieval.rewrite.text,
        "rules": retrieval.rewrite.method,
        "retrieval_settings": retrieval.tuning,
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
