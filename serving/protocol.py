"""The OpenAI wire format (requests as pydantic models, responses as builders), kept apart from the
domain types: a request converts itself into an ``AnswerRequest``; events become response bodies."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from answer.store import citation_json
from answer.types import AnswerRecord, Citation, Message, Role
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


def completion_id(answer_id: uuid.UUID) -> str:
    return f"chatcmpl-{answer_id.hex}"


def sourcebook_json(record: AnswerRecord) -> dict[str, Any]:
    return {
        "answer_id": str(record.id),
        "rewritten_query": record.rewrite.get("search_text"),
        "rewrite_method": record.rewrite.get("method"),
        "verdict": record.verdict.as_dict(),
        "prompt_version": record.prompt_version,
        "generator": record.model,
        "cached": record.cached,
        "timings_ms": record.timings_ms,
    }


def usage_json(record: AnswerRecord) -> dict[str, int]:
    return {
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": record.prompt_tokens + record.completion_tokens,
    }


def completion_body(record: AnswerRecord, *, assistant: str, created: int) -> dict[str, Any]:
    return {
        "id": completion_id(record.id),
        "object": "chat.completion",
        "created": created,
        "model": assistant,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": record.text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage_json(record),
        "citations": [citation_json(c) for c in record.citations],
        "sourcebook": sourcebook_json(record),
    }


def chunk_body(
    answer_id: uuid.UUID,
    *,
    assistant: str,
    created: int,
    delta: dict[str, str],
    citations: tuple[Citation, ...] = (),
    finish_reason: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id(answer_id),
        "object": "chat.completion.chunk",
        "created": created,
        "model": assistant,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if citations:
        body["citations"] = [citation_json(c) for c in citations]
    return body


def final_chunk_body(record: AnswerRecord, *, assistant: str, created: int) -> dict[str, Any]:
    body = chunk_body(record.id, assistant=assistant, created=created, delta={}, finish_reason="stop")
    body["citations"] = [citation_json(c) for c in record.citations]
    body["usage"] = usage_json(record)
    body["sourcebook"] = sourcebook_json(record)
    return body


def models_body(assistant: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": assistant, "object": "model", "created": int(time.time()), "owned_by": "sourcebook"}],
    }
