"""A conversation as the answer stage reads it: the question, the turns before it, their hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from answer.types import Message
from retrieval.pipeline import clean_query, without_control
from sourcebook.errors import ErrorCode, SourcebookError


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
    # Earlier turns reach the rewrite prompt and, when the rewrite falls back to them, the stored
    # search text: a NUL in one was a database error (PostgreSQL text refuses it).
    history = tuple(Message(m.role, without_control(m.content)) for m in turns[:-1][-max_history:])
    return question, history


def history_hash(history: Sequence[Message]) -> str | None:
    if not history:
        return None
    wire = json.dumps([[m.role, m.content] for m in history], ensure_ascii=False)
    return hashlib.sha256(wire.encode()).hexdigest()
