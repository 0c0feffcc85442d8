"""Test doubles that implement the Protocols for real; tests/contracts/ runs each through the suite
its real counterparts pass, which is why the other tests may trust them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import numpy as np
import numpy.typing as npt

from answer.types import Delta, GenerationParams, Message, Task
from retrieval.pipeline import Retrieval
from retrieval.types import Caller, Candidate, Rewrite
from sourcebook.errors import ErrorCode, SourcebookError


class HashEmbedder:
    """``Embedder`` whose vectors are seeded by each text's SHA-256: the same text, the same unit vector."""

    def __init__(self, dim: int = 32, model_name: str = "hash-embedder") -> None:
        self._dim = dim
        self._model_name = model_name

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
            row = np.random.default_rng(seed).standard_normal(self._dim)
            rows[i] = row / np.linalg.norm(row)
        return rows


@dataclass(frozen=True, slots=True)
class Script:
    """What a ``ScriptedChatModel`` answers for one task: ``pieces`` one token each, then the usage.

    ``unavailable``: no endpoint answers (``model_unavailable`` before any text); ``stop_after``: the
    server goes away after that many pieces (``model_unavailable`` mid-answer); ``leak``: the reply
    is the system prompt, word by word (a prompt-extraction attack that worked)."""

    pieces: tuple[str, ...] = ()
    leak: bool = False
    unavailable: bool = False
    stop_after: int | None = None
    prompt_tokens: int = 42


@dataclass
class ScriptedChatModel:
    """``ChatModel`` that plays a ``Script`` per task and records every call it is sent.

    Like a model server it honours ``max_tokens`` (a piece is a token) and ``stop`` (the reply ends
    before the first stop string), and every delta carries the token usage so far. A task without a
    script is unavailable. A task given a sequence of scripts plays them call by call, the last one
    for every call after it (a two-step answer: the passage chosen, then the answer)."""

    scripts: Mapping[Task, Script | Sequence[Script]]
    model: str = "scripted-model"
    calls: list[tuple[Task, tuple[Message, ...], GenerationParams]] = field(default_factory=list)

    def _script(self, task: Task) -> Script:
        scripted = self.scripts.get(task, Script(unavailable=True))
        if isinstance(scripted, Script):
            return scripted
        made = sum(called == task for called, _, _ in self.calls)
        return scripted[min(made, len(scripted)) - 1]

    def _delta(self, text: str, script: Script, sent: int) -> Delta:
        """A piece with the usage so far, as vLLM's continuous usage reports it."""
        return Delta(
            text, prompt_tokens=script.prompt_tokens, completion_tokens=sent, model=self.model, endpoint="scripted://"
        )

    async def stream(
        self, task: Task, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Delta, None]:
        self.calls.append((task, tuple(messages), params))
        script = self._script(task)
        if script.unavailable:
            raise SourcebookError(ErrorCode.MODEL_UNAVAILABLE, f"no model endpoint answered for {task}")
        sent = 0
        pieces = script.pieces
        if script.leak:
            system = next((m.content for m in messages if m.role == "system"), "")
            pieces = tuple(w + " " for w in system.split())
        for piece in pieces[: params.max_tokens]:
            if script.stop_after is not None and sent >= script.stop_after:
                raise SourcebookError(ErrorCode.MODEL_UNAVAILABLE, "the scripted server stopped mid-answer")
            cut = min((piece.find(s) for s in params.stop if s in piece), default=-1)
            await anyio.sleep(0)
            if cut >= 0:
                if piece[:cut]:
                    sent += 1
                    yield self._delta(piece[:cut], script, sent)
                break
            sent += 1
            yield self._delta(piece, script, sent)
        yield Delta(
            "",
            prompt_tokens=script.prompt_tokens,
            completion_tokens=sent,
            finish_reason="stop",
            model=self.model,
            endpoint="scripted://",
        )


def candidate(
    number: int, text: str, *, title: str = "Travel policy", document_id: uuid.UUID | None = None
) -> Candidate:
    """A retrieved passage (chunk id ``100 + number``)."""
    return Candidate(
        chunk_id=100 + number,
        document_id=document_id or uuid.uuid5(uuid.NAMESPACE_URL, f"doc-{number}"),
        ordinal=0,
        text=text,
        context="",
        title=title,
        source_uri=f"file:///docs/{number}.md",
        page=None,
        heading_path=(),
        kind="text",
        content_hash=f"h{number}",
        score=1.0 / number,
        bm25_rank=number,
        vector_rank=number,
    )


@dataclass
class FixedRetriever:
    """``Retriever`` that finds the same passages for every question, and records who asked what."""

    passages: Sequence[Candidate]
    asked: list[tuple[str, Caller]] = field(default_factory=list)

    def retrieve(self, question: str, *, caller: Caller, top_k: int | None = None) -> Retrieval:
        self.asked.append((question, caller))
        found = list(self.passages[:top_k] if top_k else self.passages)
        return Retrieval(
            rewrite=Rewrite(question, question),
            mode="hybrid",
            passages=found,
            candidates=found,
            terms=question.split(),
            vector_plan="exact",
            reranker="none",
            reranked=0,
            timings_ms={"search": 1.0},
            tuning="fixed",
        )
