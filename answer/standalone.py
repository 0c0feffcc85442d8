"""Follow-up questions into standalone ones, by the rewrite model, with a rules-only fallback.

A first turn needs no rewriting. A follow-up ("and for contractors?") is rewritten by the model
routed to the ``rewrite`` task; an empty or runaway reply is rejected, and when no model answers
within the rewrite's deadline (the whole reply, not only its first token) the previous question is
prepended, which is what keyword and vector search can use. The method is
recorded with the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import aclosing

import anyio

from answer.prompts import PromptTemplate, rewrite_messages
from answer.types import ChatModel, GenerationParams, Message, Standalone
from sourcebook.errors import ErrorCode, SourcebookError

log = logging.getLogger(__name__)

_MAX_TOKENS = 64


def from_history(question: str, history: Sequence[Message]) -> str:
    previous = [m.content for m in history if m.role == "user"]
    return f"{previous[-1]} {question}" if previous else question


def clean(reply: str) -> str:
    line = next((part.strip() for part in reply.strip().splitlines() if part.strip()), "")
    for prefix in ("standalone query:", "query:", "rewritten query:"):
        if line.casefold().startswith(prefix):
            line = line[len(prefix) :].strip()
    return line.strip("\"'` ")


async def standalone_question(
    model: ChatModel, template: PromptTemplate, question: str, history: Sequence[Message], *, deadline_s: float
) -> Standalone:
    if not any(m.role == "user" for m in history):
        return Standalone(question, "first-turn")
    params = GenerationParams(max_tokens=_MAX_TOKENS, temperature=0.0, stop=("\n",), first_token_s=deadline_s)
    pieces: list[str] = []
    messages = rewrite_messages(template, question=question, history=history)
    try:
        with anyio.fail_after(deadline_s):
            async with aclosing(model.stream("rewrite", messages, params)) as deltas:
                async for delta in deltas:
                    pieces.append(delta.text)
    except TimeoutError:
        log.warning("the rewrite took longer than its deadline: the previous question is prepended instead")
        return Standalone(from_history(question, history), "history-rules")
    except SourcebookError as exc:
        if exc.code is not ErrorCode.MODEL_UNAVAILABLE:
            raise
        log.warning("rewrite model unavailable: the previous question is prepended instead")
        return Standalone(from_history(question, history), "history-rules")
    text = clean("".join(pieces))
    if not text or len(text) > 2 * len(question) + 300:
        return Standalone(from_history(question, history), "llm-rejected")
    return Standalone(text, "llm")
