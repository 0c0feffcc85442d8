"""Ingestion's domain types and Protocols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from retrieval.types import ChunkMark

ElementKind = Literal["title", "text", "list", "table"]
ChunkKind = Literal["text", "table"]
Outcome = Literal["ingested", "updated", "unchanged", "acl_updated", "duplicate", "removed", "failed"]


# The ingestion job's name in the queue: jobs are deferred under it, and SQL over procrastinate_jobs
# finds them by it.
INGEST_TASK = "sourcebook.ingest_file"


@dataclass(frozen=True, slots=True)
class Element:
    """One structural piece of a parsed document.

    ``depth`` is the heading level for titles (0 = top); ``rows`` holds a table's cells, header row
    first, when the parser could read them.
    """

    kind: ElementKind
    text: str
    page: int | None = None
    depth: int = 0
    rows: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    title: str
    mime_type: str
    elements: tuple[Element, ...]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document sized for the embedder; ``context`` (title + heading path) is embedded with it."""

    ordinal: int
    text: str
    context: str
    heading_path: tuple[str, ...]
    page: int | None
    kind: ChunkKind
    token_count: int

    @property
    def embed_text(self) -> str:
        return shown_text(self.context, self.text)


def shown_text(context: str, text: str) -> str:
    """A chunk as it is embedded and shown to the model: its context (title, headings), then its text."""
    return f"{context}\n\n{text}" if context else text


@dataclass(frozen=True, slots=True)
class AccessList:
    """Who may read a document: tenant and groups (``everyone`` only when made public on purpose)."""

    tenant_id: str
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """One file to ingest, with everything decided at enqueue time."""

    path: Path
    source_uri: str
    access: AccessList
    title: str | None = None
    url: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IngestResult:
    source_uri: str
    outcome: Outcome
    detail: str = ""
    document_id: str | None = None
    chunks: int = 0
    embedded: int = 0
    timings_ms: Mapping[str, float] = field(default_factory=dict)


class TokenCounter(Protocol):
    """The embedder's own tokenizer, used to size chunks."""

    def __call__(self, text: str) -> list[int]: ...


class ChunkScreen(Protocol):
    """Scans chunks for prompt injection before they are stored (``guardrails.screen.InjectionScreen``).

    A flagged chunk is stored with its mark, never dropped: the mark travels with every retrieved
    passage, and the answer stage decides what to do with it.
    """

    @property
    def name(self) -> str:
        """Identifies the rules and the classifier: stored with each mark, a change re-scans."""
        ...

    def screen(self, texts: Sequence[str]) -> list[ChunkMark]:
        """One mark per text (a chunk as the model is shown it: title, section and text)."""
        ...
