"""Serving's Protocols and frozen dataclasses: passages shown to the model, citations, verdicts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from retrieval.pipeline import Retrieval
from retrieval.types import Caller

Role = Literal["system", "user", "assistant"]
Task = Literal["answer", "rewrite"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Source:
    """A passage as the model sees it: ``[number]`` in the prompt, and what a citation of it points to."""

    number: int
    chunk_id: int
    chunk_ids: tuple[int, ...]
    document_id: uuid.UUID
    title: str
    uri: str
    page: int | None
    text: str
    score: float
    date: str | None = None
    # The headings the passage sits under, below the document's title ("Installing > On Windows").
    section: str = ""
    # What the injection screen found in it when it was stored (reason codes; empty: nothing).
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Citation:
    """A ``[number]`` in the answer that resolved to a passage the caller may read."""

    number: int
    source: Source
    quote: str


@dataclass(frozen=True, slots=True)
class Emission:
    """What the citation state machine lets out after a piece of the token stream."""

    text: str
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a model's streamed reply; the last one carries the token usage."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None
    endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_tokens: int
    temperature: float
    stop: tuple[str, ...] = ()
    # The deadline for the first token, in seconds from the call (None: no deadline). Every retry,
    # wait for a free slot and fallback to another endpoint happens within it.
    first_token_s: float | None = None


class ChatModel(Protocol):
    """Streams a chat completion from an OpenAI-compatible model server (vLLM)."""

    def stream(self, task: Task, messages: Sequence[Message], params: GenerationParams) -> AsyncGenerator[Delta, None]:
        """Yields the reply's text pieces; raises ``model_unavailable`` when no endpoint answers
        before ``params.first_token_s`` has passed."""
        ...


class Retriever(Protocol):
    """Finds the passages for a question among those the caller may read (``RetrievalPipeline``)."""

    def retrieve(self, question: str, *, caller: Caller, top_k: int | None = None) -> Retrieval: ...


Outcome = Literal["answer", "abstain", "extractive", "incomplete", "blocked"]


@dataclass(frozen=True, slots=True)
class Draft:
    """An answer before it is final: what the guards look at."""

    question: str
    text: str
    sources: tuple[Source, ...]
    citations: tuple[Citation, ...]
    dropped_markers: tuple[str, ...]
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Finding:
    """One guard's observation: ``flag`` marks it for the verdict."""

    guard: str
    code: str
    message: str
    flag: bool = True


@dataclass(frozen=True, slots=True)
class SentenceScore:
    """How one answer sentence fared before it was shown: its support by the passages (``None``
    when it makes no claim to check) and what was done with it (``shown``, ``marked``, ``removed``)."""

    text: str
    score: float | None
    supported: bool
    action: Literal["shown", "marked", "removed"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer's outcome and what the guards found. ``review`` lists why a person must look at it
    (empty: no review); ``policy_version`` is the tenant policy the checks ran under."""

    outcome: Outcome
    flagged: bool
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    sentences: tuple[SentenceScore, ...] = ()
    review: tuple[str, ...] = ()
    policy_version: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "flagged": self.flagged,
            "findings": [{"guard": f.guard, "code": f.code, "message": f.message} for f in self.findings],
            "sentences": [
                {"text": s.text, "score": s.score, "supported": s.supported, "action": s.action} for s in self.sentences
            ],
            "review": list(self.review),
            "policy_version": self.policy_version,
        }


class Guard(Protocol):
    """Checks a draft answer before it is final (``guardrails/``); the answer stage is handed its guards."""

    name: str

    def check(self, draft: Draft) -> Sequence[Finding]: ...


ScreenOutcome = Literal["allow", "abstain", "block"]


@dataclass(frozen=True, slots=True)
class Screened:
    """A question after the input checks. ``question`` and ``history`` are what every later stage,
    the logs and the provenance see (normalised, sensitive data redacted as the policy says); the
    original is never kept. ``hold``: release the answer only once it is whole and checked (the
    question looked like an attack, so not even its first sentence is shown before the end)."""

    question: str
    history: tuple[Message, ...]
    outcome: ScreenOutcome
    findings: tuple[Finding, ...] = ()
    review: tuple[str, ...] = ()
    hold: bool = False
    policy_version: int | None = None


@dataclass(frozen=True, slots=True)
class Released:
    """What a sentence gate lets out: text that passed its checks (``""`` while it waits for the end of
    a sentence). ``blocked`` stops the answer: nothing more is shown and it becomes the refusal.
    ``done``: the answer reached its length limit, the gate lets out nothing more, and the model can
    stop generating."""

    text: str
    blocked: bool = False
    done: bool = False


@dataclass(frozen=True, slots=True)
class Checked:
    """A gate's account of the answer once it is closed: every finding, each sentence's support, why
    it needs a review, and the policy version."""

    findings: tuple[Finding, ...]
    sentences: tuple[SentenceScore, ...]
    review: tuple[str, ...]
    policy_version: int | None


class SentenceGate(Protocol):
    """Checks one answer sentence by sentence as it streams; nothing leaves it unchecked."""

    @property
    def system_note(self) -> str:
        """A line for the end of the system prompt (the per-request canary), or ``""``."""
        ...

    async def feed(self, text: str) -> Released:
        """Takes answer text as it arrives; returns what may be shown now."""
        ...

    def quoting(self) -> None:
        """What follows quotes the passages (the extractive answer): it follows no instruction and
        needs no support, but its data and topics are still checked."""
        ...

    async def close(self) -> Released:
        """The end of the answer: checks what is left and returns what may still be shown."""
        ...

    def checked(self) -> Checked: ...


class Guardrails(Protocol):
    """The guards around an answer (``guardrails/``): the question before retrieval and the model,
    the answer sentence by sentence before it is shown."""

    def screen(self, tenant_id: str, question: str, history: Sequence[Message]) -> Screened: ...

    def gate(self, tenant_id: str, screened: Screened, sources: Sequence[Source], *, prompt: str) -> SentenceGate:
        """A gate for one answer; ``prompt`` is the system prompt the model got, never to be repeated."""
        ...


@dataclass(frozen=True, slots=True)
class Retrieved:
    """A passage retrieval handed to the model, with how it was found (provenance)."""

    number: int
    chunk_ids: tuple[int, ...]
    document_id: uuid.UUID
    score: float
    bm25_rank: int | None
    vector_rank: int | None
    rerank_score: float | None


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """Everything needed to replay an answer: stored once it is final."""

    id: uuid.UUID
    tenant_id: str
    api_key_id: str | None
    question: str
    history_hash: str | None
    history_turns: int
    rewrite: dict[str, str]
    retrieved: tuple[Retrieved, ...]
    citations: tuple[Citation, ...]
    text: str
    verdict: Verdict
    model: str
    endpoint: str | None
    prompt_version: str
    prompt_tokens: int
    completion_tokens: int
    timings_ms: dict[str, float]
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Standalone:
    text: str
    method: str  # first-turn | llm | llm-rejected | history-rules


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    tenant_id: str
    groups: tuple[str, ...]
    api_key_id: str | None
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    # Recorded with the usage: the API route or CLI command that asked.
    route: str = "chat.completions"


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
