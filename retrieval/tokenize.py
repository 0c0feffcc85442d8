"""The one keyword tokenizer: the same function turns chunks into BM25 terms at ingest and queries
into terms at search time, so PostgreSQL never tokenizes anything itself (its text parser splits hex
strings and dotted numbers differently from any Python regex).

Text is NFKC-normalised and case-folded. A token is a run of letters, marks and digits in any script;
scripts written without spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) give one token per
character, the usual unigram fallback. Underscores and punctuation split tokens. Stop-words are
dropped and words stemmed with a Snowball stemmer when the settings say so; tokens longer than
``MAX_TOKEN_CHARS`` are dropped (hashes and IDs are shorter; longer runs are base64 or noise).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import regex

if TYPE_CHECKING:
    from sourcebook.settings import Settings

MAX_TOKEN_CHARS = 100
# PostgreSQL keeps at most this many positions per lexeme and positions up to this value.
MAX_POSITIONS = 256
MAX_POSITION = 16383

_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_TOKEN = regex.compile(rf"[{_UNSPACED}]|[[\p{{L}}\p{{M}}\p{{N}}]--[{_UNSPACED}]]+", regex.VERSION1)

# Lucene's English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET): short, and only words that
# carry no topic, so a question's content words always survive.
ENGLISH_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)

Stemmer = Literal["none", "english"]
StopWords = Literal["none", "english"]


@dataclass(frozen=True, slots=True)
class TokenizerSpec:
    """What decides the terms; part of the ingestion fingerprint (a change re-indexes)."""

    stemmer: Stemmer = "english"
    stopwords: StopWords = "english"

    @classmethod
    def of(cls, settings: Settings) -> TokenizerSpec:
        return cls(settings.bm25_stemmer, settings.bm25_stopwords)

    @property
    def key(self) -> str:
        return f"bm25-tok-1:{self.stemmer}:{self.stopwords}"


class Tokenizer:
    """Text → BM25 terms, and the tsvector literal PostgreSQL stores them in."""

    def __init__(self, spec: TokenizerSpec = TokenizerSpec()) -> None:
        self.spec = spec
        self._stop = ENGLISH_STOP_WORDS if spec.stopwords == "english" else frozenset()
        self._stem = _stemmer(spec.stemmer)

    def tokens(self, text: str) -> list[str]:
        """The terms of ``text`` in order, repeats included (rank-bm25 gets exactly this list)."""
        return [term for term in self._positioned(text)[0] if term is not None]

    def _positioned(self, text: str) -> tuple[list[str | None], int]:
        """Every word slot (None where a stop-word or an over-long token was) and the term count."""
        out: list[str | None] = []
        kept = 0
        for match in _TOKEN.finditer(unicodedata.normalize("NFKC", text).casefold()):
            word = match.group()
            if len(word) > MAX_TOKEN_CHARS or word in self._stop:
                out.append(None)
                continue
            out.append(self._stem(word))
            kept += 1
        return out, kept

    def tsvector(self, text: str) -> tuple[str, int]:
        """The tsvector literal of ``text`` (each term with its positions) and its term count.

        Positions are word slots (stop-words keep theirs, so phrases keep their gaps). Term frequency
        is the number of positions: PostgreSQL keeps 256 per term and positions up to 16,383, far
        beyond a chunk the embedder accepts (at most a few hundred words).
        """
        slots, kept = self._positioned(text)
        positions: dict[str, list[int]] = {}
        for slot, term in enumerate(slots, start=1):
            if term is not None:
                positions.setdefault(term, []).append(min(slot, MAX_POSITION))
        literal = " ".join(
            f"{quote_lexeme(term)}:{','.join(map(str, spots[:MAX_POSITIONS]))}" for term, spots in positions.items()
        )
        return literal, kept


def quote_lexeme(term: str) -> str:
    """A lexeme quoted for tsvector/tsquery input (never parsed by a text-search configuration)."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery_any(terms: Sequence[str]) -> str:
    """A tsquery matching any of ``terms`` (OR), built from our own lexemes."""
    return " | ".join(quote_lexeme(t) for t in dict.fromkeys(terms))


def _unchanged(word: str) -> str:
    return word


def _stemmer(name: Stemmer) -> Callable[[str], str]:
    if name == "none":
        return _unchanged
    import Stemmer as pystemmer

    stem: Callable[[str], str] = pystemmer.Stemmer(name).stemWord
    return functools.lru_cache(maxsize=200_000)(stem)
