"""The guards' own result types: frozen values, no I/O. The answer stage adapts them to its ``Guard``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What an input check recommends: let the question through, let it through and record why, or stop it.
Verdict = Literal["allow", "warn", "block"]
# What a tenant's policy does with sensitive data: leave it, replace it with a placeholder, or refuse.
Action = Literal["allow", "redact", "block"]

_RANK: dict[Verdict, int] = {"allow": 0, "warn": 1, "block": 2}


def worst(*verdicts: Verdict) -> Verdict:
    """The strictest of the verdicts (``allow`` when none)."""
    return max(verdicts, key=_RANK.__getitem__, default="allow")


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason a check gave: ``check`` names the check, ``code`` is a stable reason code, ``verdict``
    what this finding alone recommends; ``start``/``end`` locate it in the checked text when known."""

    check: str
    code: str
    verdict: Verdict
    detail: str
    start: int | None = None
    end: int | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Normalised:
    """A text after NFKC and the removal of invisible characters; ``hidden`` is what Unicode tag
    characters spelled (a way to smuggle instructions no reader sees)."""

    text: str
    removed: int
    hidden: str


@dataclass(frozen=True, slots=True)
class InputVerdict:
    """The input checks' decision on one question: the verdict, the first reason code of the
    strictest finding, the normalised text the later stages should use, and every finding."""

    verdict: Verdict
    reason: str | None
    text: str
    findings: tuple[Finding, ...]
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Sensitive:
    """A secret or a piece of personal data found in a text, ``text[start:end]``."""

    kind: Literal["secret", "pii"]
    label: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """What a tenant's policy made of the sensitive spans in a text: ``text`` is what may be passed on
    (every span the policy does not allow redacted, also when it blocks)."""

    action: Action
    text: str
    found: tuple[Sensitive, ...]
    reason: str | None


@dataclass(frozen=True, slots=True)
class Passage:
    """A passage shown to the model, numbered as the answer cites it (``[number]``)."""

    number: int
    text: str


@dataclass(frozen=True, slots=True)
class SentenceSupport:
    """How well one answer sentence is supported by the passages.

    ``score`` is in [0, 1] (stage 1, or stage 2's P(Yes) when the judge ran); ``lexical`` is the share
    of its content words found in the passages it cites. ``missing_facts`` are the numbers, dates and
    names that neither the passages shown nor the question contain (a sentence with one is never
    supported), ``missing_words`` the content words. ``undrawn``: for a sentence that takes less than
    half its words from the passages it cites, its names (else words) that they lack; only the judge
    can find such a sentence supported."""

    sentence: str
    start: int
    end: int
    cited: tuple[int, ...]
    score: float
    lexical: float
    similarity: float | None
    judge: float | None
    missing_facts: tuple[str, ...]
    missing_words: tuple[str, ...]
    supported: bool
    undrawn: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Groundedness:
    """Every checked sentence of an answer, and those found unsupported."""

    sentences: tuple[SentenceSupport, ...]

    @property
    def unsupported(self) -> tuple[SentenceSupport, ...]:
        return tuple(s for s in self.sentences if not s.supported)

    @property
    def supported(self) -> bool:
        return not self.unsupported
