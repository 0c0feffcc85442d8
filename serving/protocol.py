"""The OpenAI wire format and Sourcebook's own answering bodies as pydantic models, requests and
responses, kept apart from the domain types: a request converts itself into an ``AnswerRequest``; an
answer's events become ``ChatCompletion`` and ``ChatCompletionChunk`` bodies. The policy and review
queue bodies are in ``serving.protocol_policy`` and ``serving.protocol_reviews``."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from answer.types import AnswerRecord, Citation, Message, Outcome, Role
from retrieval.types import Filters, Mode
from sourcebook.errors import ErrorCode, SourcebookError

MAX_MESSAGES = 64
MAX_MESSAGE_CHARS = 32_000


def utf8(value: str) -> str:
    """JSON may carry lone surrogates (``"\\ud800"``), which no UTF-8 encoder (the database's, the
    cache key's, the response's) accepts: refuse them where they come in."""
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("must be valid Unicode (a lone surrogate was sent)")
    return value


def no_nul(value: str) -> str:
    """PostgreSQL text can't hold NUL: refuse it as the caller's error, not the database's."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return utf8(value)


# Any text of a request; free text that is stored or compared in SQL is ``Text``.
Utf8 = Annotated[str, AfterValidator(utf8)]
Text = Annotated[str, AfterValidator(no_nul)]


class TextPart(BaseModel):
    type: Literal["text"]
    text: Utf8


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: Annotated[Utf8, Field(max_length=MAX_MESSAGE_CHARS)] | list[TextPart] | None = None
    name: str | None = None

    def to_message(self) -> Message:
        roles: dict[str, Role] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
        role = roles.get(self.role)
        if role is None:
            raise SourcebookError(
                ErrorCode.INVALID_REQUEST,
                f"messages with role {self.role!r} are not supported",
                hint="use the roles system, user and assistant",
            )
        text = "\n".join(p.text for p in self.content) if isinstance(self.content, list) else self.content or ""
        if len(text) > MAX_MESSAGE_CHARS:
            raise SourcebookError(
                ErrorCode.INVALID_REQUEST,
                f"a message is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}",
            )
        return Message(role, text)


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's chat request that Sourcebook uses; others are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: bool = False
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=8192)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=8192)] | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None

    def domain_messages(self) -> tuple[Message, ...]:
        return tuple(m.to_message() for m in self.messages)


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[Utf8, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    top_k: Annotated[int, Field(ge=1, le=50)] = 8
    mode: Mode = "hybrid"
    document_ids: Annotated[list[uuid.UUID], Field(max_length=1000)] = []
    source_prefix: Annotated[Text, Field(max_length=2000)] | None = None

    def filters(self) -> Filters | None:
        if not self.document_ids and not self.source_prefix:
            return None
        return Filters(document_ids=tuple(self.document_ids), source_prefix=self.source_prefix)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_id: uuid.UUID
    rating: Literal["up", "down"]
    comment: Annotated[Text, Field(max_length=4000)] | None = None
    correction: Annotated[Text, Field(max_length=16000)] | None = None

    @property
    def score(self) -> int:
        return 1 if self.rating == "up" else -1


class Body(BaseModel):
    """A response body: every key it may carry is declared, so a misspelt one fails where it is made."""

    model_config = ConfigDict(extra="forbid")


class WireCitation(Body):
    number: int
    chunk_id: int
    chunk_ids: list[int]
    document_id: uuid.UUID
    title: str
    uri: str
    page: int | None
    date: str | None
    quote: str
    score: float

    @classmethod
    def of(cls, citation: Citation) -> WireCitation:
        s = citation.source
        return cls(
            number=citation.number,
            chunk_id=s.chunk_id,
            chunk_ids=list(s.chunk_ids),
            document_id=s.document_id,
            title=s.title,
            uri=s.uri,
            page=s.page,
            date=s.date,
            quote=citation.quote,
            score=s.score,
        )


class WireFinding(Body):
    guard: str
    code: str
    message: str


class WireSentence(Body):
    """One answer sentence as the guards saw it before it was shown."""

    text: str
    score: float | None
    supported: bool
    action: Literal["shown", "marked", "removed"]


class WireVerdict(Body):
    outcome: Outcome
    flagged: bool
    findings: list[WireFinding]
    sentences: list[WireSentence] = []
    review: list[str] = []
    policy_version: int | None = None


class AnswerInfo(Body):
    """Sourcebook's own part of a completion: the answer's id (for feedback) and how it was made."""

    answer_id: uuid.UUID
    rewritten_query: str | None
    rewrite_method: str | None
    verdict: WireVerdict
    prompt_version: str
    generator: str
    cached: bool
    timings_ms: dict[str, float]

    @classmethod
    def of(cls, record: AnswerRecord) -> AnswerInfo:
        verdict = record.verdict
        return cls(
            answer_id=record.id,
            rewritten_query=record.rewrite.get("search_text"),
            rewrite_method=record.rewrite.get("method"),
            verdict=WireVerdict(
                outcome=verdict.outcome,
                flagged=verdict.flagged,
                findings=[WireFinding(guard=f.guard, code=f.code, message=f.message) for f in verdict.findings],
                sentences=[
                    WireSentence(text=s.text, score=s.score, supported=s.supported, action=s.action)
                    for s in verdict.sentences
                ],
                review=list(verdict.review),
                policy_version=verdict.policy_version,
            ),
            prompt_version=record.prompt_version,
            generator=record.model,
            cached=record.cached,
            timings_ms=record.timings_ms,
        )


class Usage(Body):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, record: AnswerRecord) -> Usage:
        return cls(
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            total_tokens=record.prompt_tokens + record.completion_tokens,
        )


class AssistantMessage(Body):
    role: Literal["assistant"]
    content: str


class Choice(Body):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "content_filter"]


class ChatCompletion(Body):
    """OpenAI's chat completion, with the answer's ``citations`` and ``sourcebook`` provenance."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[WireCitation]
    sourcebook: AnswerInfo


class ChunkDelta(Body):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(Body):
    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop", "content_filter"] | None


class ChatCompletionChunk(Body):
    """One ``data:`` event of a streamed completion. Keys that a chunk doesn't carry are left out
    (serialise with ``exclude_unset``): ``citations`` comes with the text that first cites a passage,
    and the last chunk carries them all with ``usage`` and ``sourcebook``."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    citations: list[WireCitation] | None = None
    usage: Usage | None = None
    sourcebook: AnswerInfo | None = None


class ModelCard(Body):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Body):
    object: Literal["list"]
    data: list[ModelCard]


def finish_reason(record: AnswerRecord) -> Literal["stop", "content_filter"]:
    """OpenAI's ``content_filter`` for an answer the guards stopped, as OpenAI's own filter reports it."""
    return "content_filter" if record.verdict.outcome == "blocked" else "stop"


def completion_id(answer_id: uuid.UUID) -> str:
    return f"chatcmpl-{answer_id.hex}"


def completion(record: AnswerRecord, *, assistant: str, created: int) -> ChatCompletion:
    return ChatCompletion(
        id=completion_id(record.id),
        object="chat.completion",
        created=created,
        model=assistant,
        choices=[
            Choice(
                index=0,
                message=AssistantMessage(role="assistant", content=record.text),
                finish_reason=finish_reason(record),
            )
        ],
        usage=Usage.of(record),
        citations=[WireCitation.of(c) for c in record.citations],
        sourcebook=AnswerInfo.of(record),
    )


def chunk(
    answer_id: uuid.UUID,
    *,
    assistant: str,
    created: int,
    delta: ChunkDelta,
    citations: tuple[Citation, ...] = (),
) -> ChatCompletionChunk:
    body = ChatCompletionChunk(
        id=completion_id(answer_id),
        object="chat.completion.chunk",
        created=created,
        model=assistant,
        choices=[ChunkChoice(index=0, delta=delta, finish_reason=None)],
    )
    if citations:
        body.citations = [WireCitation.of(c) for c in citations]
    return body


def final_chunk(record: AnswerRecord, *, assistant: str, created: int) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=completion_id(record.id),
        object="chat.completion.chunk",
        created=created,
        model=assistant,
        choices=[ChunkChoice(index=0, delta=ChunkDelta(), finish_reason=finish_reason(record))],
        citations=[WireCitation.of(c) for c in record.citations],
        usage=Usage.of(record),
        sourcebook=AnswerInfo.of(record),
    )


def models(assistant: str) -> ModelList:
    return ModelList(
        object="list",
        data=[ModelCard(id=assistant, object="model", created=int(time.time()), owned_by="sourcebook")],
    )


class WireChunkMark(Body):
    """What the injection screen found in a passage when it was stored: reason codes (empty: nothing),
    its most suspicious sentence's classifier score (null: rules only) and the screen's name."""

    flagged: bool
    flags: list[str]
    score: float | None
    screen: str


class WirePassage(Body):
    """A ranked passage as ``POST /v1/retrieve`` (and ``sourcebook search --json``) shows it."""

    rank: int
    chunk_id: int
    chunk_ids: list[int]
    document_id: uuid.UUID
    title: str
    uri: str
    page: int | None
    date: str | None
    heading_path: list[str]
    text: str
    score: float
    bm25_rank: int | None
    bm25_score: float | None
    vector_rank: int | None
    vector_distance: float | None
    rerank_score: float | None
    guard: WireChunkMark | None  # the injection screen's mark; null: the chunk was stored before it ran


class RetrieveResponse(Body):
    object: Literal["list"] = "list"
    query: str
    rewritten_query: str
    mode: Mode
    data: list[WirePassage]
    timings_ms: dict[str, float]


class FeedbackOut(Body):
    object: Literal["feedback"] = "feedback"
    id: int
    answer_id: uuid.UUID
    api_key_id: str | None
    rating: Literal["up", "down"]
    comment: str | None
    correction: str | None
    created_at: dt.datetime


class FeedbackItem(Body):
    """A rating with the provenance of the answer it rates (for the ML team's eval sets)."""

    id: int
    answer_id: uuid.UUID
    api_key_id: str | None
    rating: Literal["up", "down"]
    comment: str | None
    correction: str | None
    created_at: dt.datetime
    question: str
    rewritten_query: str | None
    answer: str
    verdict: str
    cited_chunk_ids: list[int]
    retrieved: list[dict[str, Any]]
    model: str
    prompt_version: str
    answered_at: dt.datetime


class FeedbackPage(Body):
    object: Literal["list"] = "list"
    data: list[FeedbackItem]
    next_after: int | None
