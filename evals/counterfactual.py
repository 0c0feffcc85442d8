"""Counterfactual QA from SQuAD: an answer's value swapped, across the whole corpus, for another of its kind.

A question whose paragraph now says 1987 where the world says 1995 tests one thing: does the answer
follow the document or what the model learned? The original value is replaced wherever it appears in
the corpus, so an answer that gives it came from memory. Kinds: a year, a number (two digits or more),
a date (``Month D, YYYY``) or a name (capitalised words; replaced by another answer of the same shape
from an article outside the corpus, to a question with the same wh-word).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["year", "number", "date", "name"]
KINDS: tuple[Kind, ...] = ("year", "number", "date", "name")

_FIRST_HALF = ("January", "February", "March", "April", "May", "June")
MONTHS: tuple[str, ...] = (*_FIRST_HALF, "July", "August", "September", "October", "November", "December")
_YEAR = re.compile(r"1[5-9]\d{2}|20[0-2]\d")
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+|\d{2,}")
_DATE = re.compile(rf"({'|'.join(MONTHS)}) (\d{{1,2}}), (\d{{4}})")
_NAME_WORD = r"[A-Z][\w'.-]*"
_NAME = re.compile(rf"{_NAME_WORD}(?: (?:of|the|de|and|von|van|{_NAME_WORD}))*")
_LINKS = frozenset({"of", "the", "de", "and", "von", "van"})


@dataclass(frozen=True, slots=True)
class Swap:
    original: str
    replacement: str
    kind: Kind


def kind_of(answer: str) -> Kind | None:
    """The kind of value an answer is, or None when it can't be swapped reliably."""
    if _YEAR.fullmatch(answer):
        return "year"
    if _DATE.fullmatch(answer):
        return "date"
    if _NUMBER.fullmatch(answer):
        return "number"
    words = answer.split()
    if _NAME.fullmatch(answer) and 1 <= len(words) <= 4 and words[-1] not in _LINKS and len(answer) >= 4:
        return "name"
    return None


def wh_word(question: str) -> str:
    """The question's wh-word (``who``, ``where``, ``which``…), or ``other``: names are swapped within it."""
    for word in question.lower().split():
        word = word.strip("?,.;:'\"")
        if word in {"who", "whom", "whose", "where", "which", "what", "when"}:
            return {"whom": "who", "whose": "who"}.get(word, word)
    return "other"


def _other_year(year: int, rng: random.Random) -> str:
    shift = rng.randint(3, 29)
    return str(year + shift if year + shift <= 2024 and rng.random() < 0.5 else year - shift)


def _other_number(text: str, rng: random.Random) -> str:
    value = int(text.replace(",", ""))
    for _ in range(20):
        candidate = max(10, round(value * rng.choice([0.6, 0.7, 0.8, 1.25, 1.4, 1.5]) + rng.randint(-3, 3)))
        if candidate != value and len(str(candidate)) >= len(str(value)) - 1:
            return f"{candidate:,}" if "," in text else str(candidate)
    return f"{value + 7:,}" if "," in text else str(value + 7)


def _other_date(text: str, rng: random.Random) -> str:
    match = _DATE.fullmatch(text)
    assert match is not None
    month: str = rng.choice([m for m in MONTHS if m != match.group(1)])
    day = rng.randint(2, 27)
    return f"{month} {day}, {_other_year(int(match.group(3)), rng)}"


def swapped_value(kind: Kind, original: str, names: Sequence[str], rng: random.Random) -> str | None:
    """Another value of the same kind; for a name, one of ``names`` (same word count), or None."""
    if kind == "year":
        return _other_year(int(original), rng)
    if kind == "number":
        return _other_number(original, rng)
    if kind == "date":
        return _other_date(original, rng)
    same_shape = [n for n in names if len(n.split()) == len(original.split()) and n != original]
    return str(rng.choice(same_shape)) if same_shape else None


def _pattern(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w,.]){re.escape(value)}(?![\w]|[,.]\d)")


def replace_everywhere(texts: Mapping[str, str], swaps: Iterable[Swap]) -> dict[str, str]:
    """Every text with every swap applied (whole values only: 1995 is not replaced inside 19950)."""
    out = dict(texts)
    for swap in swaps:
        pattern = _pattern(swap.original)
        out = {key: pattern.sub(swap.replacement, text) for key, text in out.items()}
    return out


def occurs(value: str, text: str) -> bool:
    return _pattern(value).search(text) is not None


_OUTSIDE_REFERENCE = re.compile(r"\b(he|she|him|his|her|hers|they|them|their|it|its|this|these|those)\b", re.IGNORECASE)


def standalone(question: str) -> bool:
    """Whether a question stands on its own: "Who approved of this plan?" needs the paragraph it was
    written for, and an employee's question would name the plan."""
    return _OUTSIDE_REFERENCE.search(question) is None


def name_parts(name: str) -> list[str]:
    """The words of a name that would still point to it on their own ("Agricola" of "Johannes Agricola")."""
    return [w for w in name.split() if len(w) >= 4 and w[0].isupper() and w.lower() not in _LINKS]


def name_pool(questions: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Name answers by wh-word, from (question, answer) pairs: the replacements for names."""
    pool: dict[str, set[str]] = {}
    for question, answer in questions:
        if kind_of(answer) == "name":
            pool.setdefault(wh_word(question), set()).add(answer)
    return {word: sorted(names) for word, names in pool.items()}
