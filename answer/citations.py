"""Citation markers in a token stream: a pure state machine, fed one piece at a time.

The model is shown passages numbered ``[1]..[n]`` and cites them the same way. Markers arrive split
across tokens (``[`` then ``1`` then ``]``), in several spellings (``[1][2]``, ``[1, 2]``, ``[1-3]``,
``[Passage 2]``, ``【1】``), and brackets also occur where they are not citations (code, ``a[i]``,
``[see below]``). The machine holds back only what could still become a marker, then:

- a marker whose numbers all exist is written out in canonical form (``[1][2]``);
- numbers that point nowhere are dropped (``[1, 9]`` with 3 passages → ``[1]``); a marker left
  with none is removed with the whitespace before it, so ``text [9].`` becomes ``text.``;
- anything else is text, unchanged, and nothing inside code spans or fences is touched.

Each passage's first citation is emitted as a ``Citation`` with a quote: the passage sentence that
shares the most words with the answer sentence the marker closes.
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from answer.types import Citation, Emission, Source

_MAX_HOLD = 48
_MAX_RANGE = 20
_LABEL = r"(?:(?:passages?|sources?|docs?|documents?|refs?|references?)\s*)?#?"
_NUM = r"\d{1,3}(?:\s*[-–]\s*\d{1,3})?"
_MARKER = regex.compile(
    rf"[\[【]\s*{_LABEL}{_NUM}(?:\s*(?:,|;|and|&)\s*{_LABEL}{_NUM})*\s*[\]】]",
    regex.IGNORECASE,
)
_NUMBERS = regex.compile(r"(\d{1,3})(?:\s*[-–]\s*(\d{1,3}))?")
_SENTENCE_END = regex.compile(r"(?<=[.!?。！？])\s+|\n+")
_WORD = regex.compile(r"[\p{L}\p{N}]+")
_OPENERS = "[【"
_QUOTE_CHARS = 300


def marker_numbers(marker: str) -> list[int]:
    """The passage numbers a marker names, in order, ranges expanded (``[1-3, 5]`` → 1, 2, 3, 5)."""
    numbers: list[int] = []
    for first, last in _NUMBERS.findall(marker):
        start = int(first)
        stop = int(last) if last else start
        if stop < start or stop - start >= _MAX_RANGE:
            stop = start
        numbers.extend(n for n in range(start, stop + 1) if n not in numbers)
    return numbers


def _words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text) if len(w) > 2 or w.isdigit()}


def best_quote(passage: str, claim: str, context: str = "") -> str:
    """The passage's sentence sharing most words with ``claim``, then with ``context`` (the answer
    sentence before it, which a marker often covers too); its first sentence when none do."""
    sentences: list[str] = [s.strip() for s in _SENTENCE_END.split(passage) if s.strip()]
    if not sentences:
        return ""
    claim_words, context_words = _words(claim), _words(context)

    def overlap(sentence: str) -> tuple[int, int]:
        words = _words(sentence)
        return len(words & claim_words) + len(words & context_words), len(words & claim_words)

    best = max(sentences, key=overlap) if claim_words or context_words else sentences[0]
    return best if len(best) <= _QUOTE_CHARS else best[: _QUOTE_CHARS - 1] + "…"


class CitationStream:
    """Feed the model's text as it streams; emit text with resolved markers and new citations."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self._sources = {source.number: source for source in sources}
        self._hold = ""  # a possible marker, from its opening bracket
        self._space = ""  # whitespace held back in case a dropped marker follows
        self._ticks = 0  # length of the backtick run being read
        self._fence = 0  # backticks that opened the code fence we are in (0: none)
        self._inline = 0  # backticks that opened the inline code span we are in (0: none)
        self._sentence = ""  # the answer sentence being written (what a marker's quote matches)
        self._previous_sentence = ""
        self.citations: dict[int, Citation] = {}
        self.dropped: list[str] = []
        self.markers = 0
        self.text = ""

    def feed(self, piece: str) -> Emission:
        out: list[str] = []
        cited: list[Citation] = []
        for char in piece:
            self._step(char, out, cited)
        return self._emit(out, cited)

    def close(self) -> Emission:
        """End of stream: whatever is held back is text after all."""
        out: list[str] = []
        self._end_ticks()
        out.append(self._space + self._hold)
        self._space = self._hold = ""
        return self._emit(out, [])

    def _emit(self, out: list[str], cited: list[Citation]) -> Emission:
        text = "".join(out)
        self.text += text
        return Emission(text, tuple(cited))

    def _in_code(self) -> bool:
        return bool(self._fence or self._inline)

    def _step(self, char: str, out: list[str], cited: list[Citation]) -> None:
        if char == "`" and not self._hold:
            self._ticks += 1
            self._write(self._space + char, out)
            self._space = ""
            return
        self._end_ticks()
        if self._in_code():
            self._write(char, out)
        elif self._hold:
            self._extend_hold(char, out, cited)
        elif char in _OPENERS:
            self._hold = char
        elif char.isspace():
            self._space += char
        else:
            self._write(self._space + char, out)
            self._space = ""

    def _end_ticks(self) -> None:
        run, self._ticks = self._ticks, 0
        if not run:
            return
        if self._fence:
            if run >= self._fence:
                self._fence = 0
        elif self._inline:
            if run == self._inline:
                self._inline = 0
        elif run >= 3:
            self._fence = run
        else:
            self._inline = run

    def _extend_hold(self, char: str, out: list[str], cited: list[Citation]) -> None:
        candidate = self._hold + char
        if _MARKER.fullmatch(candidate):
            self._hold = ""
            self._resolve(candidate, out, cited)
        elif len(candidate) <= _MAX_HOLD and _MARKER.fullmatch(candidate, partial=True):
            self._hold = candidate
        else:  # not a marker after all: the held text is text, and this character starts afresh
            self._write(self._space + self._hold, out)
            self._space = self._hold = ""
            self._step(char, out, cited)

    def _resolve(self, marker: str, out: list[str], cited: list[Citation]) -> None:
        numbers = marker_numbers(marker)
        valid = [n for n in numbers if n in self._sources]
        if len(valid) < len(numbers):
            self.dropped.append(marker)
        if not valid:
            # Keep line breaks, drop the spaces that only separated the marker from the text.
            self._write("\n" * self._space.count("\n"), out)
            self._space = ""
            return
        claim = self._sentence.strip()
        for number in valid:
            self.markers += 1
            if number not in self.citations:
                source = self._sources[number]
                citation = Citation(number, source, best_quote(source.text, claim, self._previous_sentence))
                self.citations[number] = citation
                cited.append(citation)
        out.append(self._space + "".join(f"[{n}]" for n in valid))
        self._space = ""

    def _write(self, text: str, out: list[str]) -> None:
        if not text:
            return
        out.append(text)
        for char in text:
            if char in ".!?。！？\n" and not self._in_code():
                if self._sentence.strip():
                    self._previous_sentence = self._sentence.strip()
                self._sentence = ""
            else:
                self._sentence += char
