"""Structure-aware chunking, sized in the embedder's own tokens.

Text under one heading path (and on one page) is split by llama-index's ``SentenceSplitter``, whose
lengths come from the embedder's tokenizer (never tiktoken's download). Tables are whole units while
they fit; a larger table is split by rows and every piece repeats the header row. Each chunk carries a
context line (document title > heading path) that is embedded with it, and the budget leaves room
for it under the model's maximum sequence length.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ingest.types import Chunk, ChunkKind, Element, ParsedDocument, TokenCounter

# [CLS] and [SEP] (or a model's equivalents) take two places of the sequence.
_SPECIAL_TOKENS = 2
_MIN_BUDGET = 32


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    max_seq_tokens: int  # the embedder's limit (256 for all-MiniLM-L6-v2)
    target_tokens: int = 200
    overlap_tokens: int = 32


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    context: str
    path: tuple[str, ...]
    page: int | None
    kind: ChunkKind


def render_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def context_line(title: str, path: Sequence[str]) -> str:
    parts = [title, *(p for p in path if p != title)]
    return " > ".join(p for p in parts if p)


class Chunker:
    """Cuts parsed documents into chunks; one per embedder (it holds the tokenizer)."""

    def __init__(self, count: TokenCounter, settings: ChunkSettings) -> None:
        self._count = count
        self._settings = settings

    def tokens(self, text: str) -> int:
        return len(self._count(text))

    def budget(self, context: str) -> int:
        room = self._settings.max_seq_tokens - _SPECIAL_TOKENS - self.tokens(context) - 1
        return max(_MIN_BUDGET, min(self._settings.target_tokens, room))

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Chunker per worker, few distinct budgets
    def _splitter(self, budget: int) -> Callable[[str], list[str]]:
        from llama_index.core.node_parser import SentenceSplitter

        overlap = min(self._settings.overlap_tokens, budget // 4)
        splitter = SentenceSplitter(chunk_size=budget, chunk_overlap=overlap, tokenizer=self._count)
        return splitter.split_text

    def split(self, text: str, budget: int) -> list[str]:
        if self.tokens(text) <= budget:
            return [text]
        return [piece for piece in self._splitter(budget)(text) if piece.strip()]

    def _table(self, element: Element, context: str, path: tuple[str, ...]) -> Iterator[_Piece]:
        budget = self.budget(context)
        if not element.rows:
            for piece in self.split(element.text, budget):
                yield _Piece(piece, context, path, element.page, "table")
            return
        header, *rows = [render_row(r) for r in element.rows]
        header_tokens = self.tokens(header) + 1
        group: list[str] = []
        used = header_tokens
        for row in rows:
            cost = self.tokens(row) + 1
            if group and used + cost > budget:
                yield _Piece("\n".join([header, *group]), context, path, element.page, "table")
                group, used = [], header_tokens
            if header_tokens + cost > budget:  # one row too long on its own: split its text
                for part in self.split(row, max(_MIN_BUDGET, budget - header_tokens)):
                    yield _Piece(f"{header}\n{part}", context, path, element.page, "table")
                continue
            group.append(row)
            used += cost
        if group or not rows:
            yield _Piece("\n".join([header, *group]), context, path, element.page, "table")

    def _pieces(self, doc: ParsedDocument, title: str) -> Iterator[_Piece]:
        stack: list[str] = []
        buffer: list[Element] = []

        def flush() -> Iterator[_Piece]:
            if not buffer:
                return
            context = context_line(title, stack)
            body = "\n".join(f"- {e.text}" if e.kind == "list" else e.text for e in buffer)
            for piece in self.split(body, self.budget(context)):
                yield _Piece(piece, context, tuple(stack), buffer[0].page, "text")
            buffer.clear()

        for element in doc.elements:
            if element.kind == "title":
                yield from flush()
                stack[:] = [*stack[: element.depth], element.text]
            elif element.kind == "table":
                yield from flush()
                yield from self._table(element, context_line(title, stack), tuple(stack))
            else:
                if buffer and element.page != buffer[0].page:
                    yield from flush()
                buffer.append(element)
        yield from flush()

    def chunk(self, doc: ParsedDocument, title: str) -> list[Chunk]:
        """The document's chunks in reading order, each within the embedder's limit."""
        chunks = []
        for ordinal, piece in enumerate(self._pieces(doc, title)):
            chunk = Chunk(ordinal, piece.text, piece.context, piece.path, piece.page, piece.kind, 0)
            chunks.append(
                Chunk(
                    ordinal,
                    piece.text,
                    piece.context,
                    piece.path,
                    piece.page,
                    piece.kind,
                    self.tokens(chunk.embed_text),
                )
            )
        return chunks
