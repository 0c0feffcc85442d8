"""An answer as sentences with their offsets and the passages each cites (``[1]``, ``[1, 3]``, ``[2-4]``).

A marker after the full stop belongs to the sentence before it (``... on Fridays. [2]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CITE = re.compile(r"\[(\d+(?:\s*[-–,]\s*\d+)*)\]")
_END = re.compile(r"[.!?]+[\"”’')\]]*(?:\s*\[\d+(?:\s*[-–,]\s*\d+)*\])*(?=\s+[^\sa-z]|\s*$)")
# A full stop after these is an abbreviation, not a sentence end.
_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "vs",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "no",
        "fig",
        "approx",
        "inc",
        "ltd",
        "co",
        "jr",
        "sr",
    ]
)
_MAX_RANGE = 50


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    text: str
    start: int
    end: int
    cited: tuple[int, ...]


def cited_numbers(text: str) -> tuple[int, ...]:
    """The passage numbers the markers in ``text`` name, in order, without repeats."""
    numbers: list[int] = []
    for marker in _CITE.findall(text):
        for part in re.split(r"\s*,\s*", marker):
            bounds = [int(n) for n in re.split(r"\s*[-–]\s*", part)]
            first, last = bounds[0], bounds[-1]
            numbers += range(first, min(last, first + _MAX_RANGE) + 1) if last >= first else [first]
    return tuple(dict.fromkeys(numbers))


def strip_markers(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", _CITE.sub("", text)).strip()


def _abbreviation(text: str, end: int) -> bool:
    word = re.search(r"([\w.]+)\.$", text[:end])
    return word is not None and (word.group(1).lower() in _ABBREVIATIONS or len(word.group(1)) == 1)


def split_sentences(answer: str) -> list[AnswerSentence]:
    """The sentences of ``answer`` (markers kept in ``text``; ``cited`` lists what they name)."""
    out: list[AnswerSentence] = []
    start = 0
    for match in _END.finditer(answer):
        if match.group().startswith(".") and _abbreviation(answer, match.start() + 1):
            continue
        _add(out, answer, start, match.end())
        start = match.end()
    _add(out, answer, start, len(answer))
    return out


def _add(out: list[AnswerSentence], answer: str, start: int, end: int) -> None:
    piece = answer[start:end]
    lead = len(piece) - len(piece.lstrip())
    text = piece.strip()
    if text:
        out.append(AnswerSentence(text, start + lead, start + lead + len(text), cited_numbers(text)))
