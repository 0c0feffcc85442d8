"""Answering a conversation: screen the question → rewrite → retrieve → prompt → generate (streamed,
citations resolved on the fly, each sentence let out only once the guards passed it) → guards on the
whole → store the provenance. Yields events; the API and ``sourcebook ask`` render them.

A question the guards stop (injection, a secret the policy blocks, a denied topic) is answered with
the refusal or the abstention without retrieval or a model call, and stored like any answer. A
sentence that stops the answer (the canary, an instruction echoed from a passage, a blocked secret)
ends generation: the answer becomes the refusal.

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
from answer.generation import Ask, Drafter, Generation, ms
from answer.prompts import ABSTAIN, REFUSAL, PromptTemplate, fit_passages
from answer.release import Shown, release
from answer.reviews import enqueue_review
from answer.sources import retrieved, to_sources
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
    Guardrails,
    Message,
    Piece,
    Retriever,
    Screened,
    SentenceGate,
    Source,
    Standalone,
    Started,
    Verdict,
)
from answer.verdict import abandoned_verdict, final_verdict, is_abstention
from retrieval.pipeline import Retrieval
from retrieval.types import Caller
from sourcebook.db import Conn
from sourcebook.errors import SourcebookError
from sourcebook.llm.speed import FALLBACK_CONTEXT_CHARS
from sourcebook.settings import Settings
from sourcebook.telemetry import TRACER_NAME, stage
from sourcebook.usage import record_usage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Turn:
    """One answer in the making: what every stage reads and adds to. ``question`` and ``history`` are
    the screened ones once the input checks ran: the original never goes further."""

    request: AnswerRequest
    question: str
    history: tuple[Message, ...]
    root: Span
    context_chars: int  # the passages' budget, fixed for the turn: the cache key covers it
    screened: Screened | None = None
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    cache: Probe | None = None


class AnswerService:
    def __init__(
        self,
        *,
        settings: Settings,
        pool: ConnectionPool[Conn],
        retrieval: Retriever,
        model: ChatModel,
        guardrails: Guardrails,
        guards: Sequence[Guard],
        answer_prompt: PromptTemplate,
        rewrite_prompt: PromptTemplate,
        on_record: Callable[[AnswerRecord], None] | None = None,
        context_chars: Callable[[], int] | None = None,
    ) -> None:
        """``guardrails`` screen each question and let the answer out sentence by sentence; ``guards``
        check the whole answer at the end. ``on_record`` sees every stored answer (in a worker
        thread): metrics, token limits. ``context_chars`` gives the passages' budget (default:
        ``answer_context_chars``, or 3600)."""
        self.settings = settings
        self._pool = pool
        self._retrieval = retrieval
        self._model = model
        self._guardrails = guardrails
        self._guards = tuple(guards)
        self._drafter = Drafter(model, answer_prompt, assistant=settings.assistant_name)
        self._rewrite_prompt = rewrite_prompt
        self._on_record = on_record
        self._context_chars = context_chars or (lambda: settings.answer_context_chars or FALLBACK_CONTEXT_CHARS)

    @property
    def answer_prompt(self) -> PromptTemplate:
        return self._drafter.template

    def screen(self, tenant_id: str, text: str) -> Screened:
        """A search query through the same input checks as a question (``/v1/retrieve``)."""
        return self._guardrails.screen(tenant_id, text, ())

    async def run(self, request: AnswerRequest) -> AsyncGenerator[Event, None]:
        question, history = split_conversation(request.messages, max_history=self.settings.max_history_messages)
        root = trace.get_tracer(TRACER_NAME).start_span("answer", attributes={"sourcebook.route": request.route})
        turn = _Turn(request, question, history, root, self._context_chars())
        try:
            with stage("input", turn.timings, parent=root):
                screened = await anyio.to_thread.run_sync(self._guardrails.screen, request.tenant_id, question, history)
            turn.screened, turn.question, turn.history = screened, screened.question, screened.history
            root.set_attribute("sourcebook.screened", screened.outcome)
            if screened.outcome != "allow":
                events = self._refuse(turn, screened)
            else:
                if self.settings.answer_cache:
                    with stage("cache", turn.timings, parent=root):
                        turn.cache = await anyio.to_thread.run_sync(self._cache_lookup, turn)
                    root.set_attribute("sourcebook.cache_hit", turn.cache.hit is not None)
                if turn.cache is not None and turn.cache.hit is not None:
                    events = self._replay(turn, turn.cache.hit)
                else:
                    events = self._answer(turn, screened)
            async with aclosing(events):
                async for event in events:
                    yield event
        finally:
            root.end()

    async def _refuse(self, turn: _Turn, screened: Screened) -> AsyncGenerator[Event, None]:
        """A question the input checks stopped: the refusal (or, for a denied topic the policy
        abstains on, the abstention), stored, with no retrieval and no model call."""
        answer_id = uuid.uuid4()
        turn.root.set_attribute("sourcebook.answer_id", str(answer_id))
        standalone = Standalone(screened.question, "screened")
        yield Started(answer_id, standalone, screened.question, ())
        blocked = screened.outcome == "block"
        text = REFUSAL if blocked else ABSTAIN
        yield Piece(text)
        draft = Draft(screened.question, text, (), (), (), "blocked" if blocked else "abstain")
        verdict = final_verdict(draft, (), screened, None)
        record = self._record(
            turn, answer_id, standalone, None, (), Shown([text]), Generation(model="none (screened)"), verdict
        )
        with stage("store", parent=turn.root):
            await anyio.to_thread.run_sync(self._store, record, turn)
        yield Finished(record)

    async def _answer(self, turn: _Turn, screened: Screened) -> AsyncGenerator[Event, None]:
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
            max_chars=self._drafter.passage_budget(turn.question, turn.context_chars),
        )
        gate = await anyio.to_thread.run_sync(
            partial(self._guardrails.gate, prompt=self._drafter.instructions()),
            turn.request.tenant_id,
            screened,
            sources,
        )
        answer_id = uuid.uuid4()
        turn.root.set_attribute("sourcebook.answer_id", str(answer_id))
        citations = CitationStream(sources)
        generation = Generation()
        shown = Shown()

        def record(verdict: Verdict) -> AnswerRecord:
            return self._record(turn, answer_id, standalone, retrieval, sources, shown, generation, verdict)

        yield Started(answer_id, standalone, retrieval.rewrite.text, tuple(sources))
        stored = False
        try:
            ask = self._ask(turn, sources, gate)
            with stage("generate", generation.timings, parent=turn.root, attach=False) as span:
                async with aclosing(release(self._drafter, ask, gate, citations, generation, shown)) as pieces:
                    async for piece in pieces:
                        yield piece
                span.set_attributes(
                    {
                        "sourcebook.model": generation.model,
                        "sourcebook.prompt_tokens": generation.prompt_tokens,
                        "sourcebook.completion_tokens": generation.completion_tokens,
                    }
                )
            with stage("checks", turn.timings, parent=turn.root):
                if generation.outcome == "answer" and is_abstention(shown.text):
                    generation.outcome = "abstain"
                draft = Draft(
                    turn.question,
                    shown.text,
                    tuple(sources),
                    tuple(shown.cited.values()),
                    tuple(citations.dropped),
                    generation.outcome,
                )
                verdict = final_verdict(
                    draft, self._guards, screened, gate.checked(), shown_before_stop=shown.before_stop
                )
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
                    verdict = abandoned_verdict(screened, gate.checked())
                    await anyio.to_thread.run_sync(self._store_abandoned, record(verdict), turn)

    def _ask(self, turn: _Turn, sources: Sequence[Source], gate: SentenceGate) -> Ask:
        request = turn.request
        params = GenerationParams(
            max_tokens=request.max_tokens or self.settings.answer_max_tokens,
            temperature=self.settings.answer_temperature if request.temperature is None else request.temperature,
            first_token_s=self.settings.answer_first_token_s,
        )
        return Ask(turn.question, tuple(sources), params, gate.system_note)

    def _record(
        self,
        turn: _Turn,
        answer_id: uuid.UUID,
        standalone: Standalone,
        retrieval: Retrieval | None,
        sources: Sequence[Source],
        shown: Shown,
        generation: Generation,
        verdict: Verdict,
    ) -> AnswerRecord:
        turn.timings.update(generation.timings)
        turn.timings["total"] = ms(turn.started)
        passages = retrieval.passages if retrieval is not None else ()
        return AnswerRecord(
            id=answer_id,
            tenant_id=turn.request.tenant_id,
            api_key_id=turn.request.api_key_id,
            question=turn.question,
            history_hash=history_hash(turn.history),
            history_turns=len(turn.history),
            rewrite=_rewrite_record(standalone, retrieval),
            retrieved=tuple(retrieved(s, c) for s, c in zip(sources, passages, strict=False)),
            citations=tuple(shown.cited.values()),
            text=shown.text,
            verdict=verdict,
            model=generation.model,
            endpoint=generation.endpoint,
            prompt_version=self.answer_prompt.version,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens or generation.deltas,
            timings_ms=turn.timings,
        )

    async def _replay(self, turn: _Turn, hit: StoredAnswer) -> AsyncGenerator[Event, None]:
        turn.root.set_attribute("sourcebook.answer_id", str(hit.id))
        yield Started(hit.id, standalone_of(hit), str(hit.rewrite.get("search_text", hit.question)), ())
        turn.timings["total"] = ms(turn.started)
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
                # The policy's version too: a new policy must not be answered from the old one's answers.
                prompt_versions=(self.answer_prompt.version, self._rewrite_prompt.version, _policy_key(turn.screened)),
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
            if record.verdict.review:
                enqueue_review(
                    conn, tenant_id=record.tenant_id, answer_id=record.id, reason="; ".join(record.verdict.review)
                )
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


def _policy_key(screened: Screened | None) -> str:
    return f"policy/{screened.policy_version if screened is not None else 'none'}"


def _rewrite_record(standalone: Standalone, retrieval: Retrieval | None) -> dict[str, str]:
    if retrieval is None:
        return {"standalone": standalone.text, "method": standalone.method}
    return {
        "standalone": standalone.text,
        "method": standalone.method,
        "search_text": retrieval.rewrite.text,
        "rules": retrieval.rewrite.method,
        "retrieval_settings": retrieval.tuning,
        "reranker": retrieval.reranker,
    }
