"""Groundedness, stage 1: is each answer sentence supported by the passages shown? Cheap and local.

Evidence for a sentence is the passages shown and the question (an answer may restate it); its
numbers, dates and names must be in the passages it cites (all shown when it cites none), because a
value taken from another passage than the one cited is the typical swap. Per sentence:

- content words (stemmed, function words dropped): the share found in the evidence;
- numbers (``12,339`` = ``12339``; small number words count as digits), and with the years and month
  names that is what dates are made of: those found in no passage;
- names (runs of capitalised words): those whose words are in no passage;
- a negation (``not``, ``never``, ``n't``) that the closest passage sentence does not have;
- drawn: the share of its content words found in the passages it cites, the question's words not
  counting as found;
- optionally, the cosine of its MiniLM embedding to the closest passage sentence.

A logistic combination of these is the support score in [0, 1]; its weights and the threshold below
which a sentence is unsupported were fitted on HaluEval-QA (``bench/guards.py --calibrate``; the
figures are in bench/README.md). A number, month or name that is in no passage, or an unmatched
negation, makes a sentence unsupported whatever the score: those are the errors an answer must not
contain, and what a cheap check can see for certain. A sentence of three words or more that takes less
than half of them from the passages it cites is unsupported too: stage 1 cannot vouch for it, so stage
2 (the judge) decides, and without a judge it does not go out. It catches a sentence made of the
question's own words (``A or B?`` answered ``A`` over a passage about neither) and one that joins the
question's subject to a fact about someone else (a passage on another person's university); what it
costs is a sentence paraphrased beyond recognition, which a judge lets through.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from guardrails.sentences import AnswerSentence, split_sentences, strip_markers
from guardrails.types import Groundedness, Passage, SentenceSupport
from retrieval.tokenize import Tokenizer

_WORD = re.compile(r"[\w'’]+")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")
_NAME = re.compile(r"\b[A-Z][\w'’\-]*(?:\s+(?:of|the|de|del|da|van|von|der|and|&)?\s*[A-Z][\w'’\-]*)*")
_MONTH = re.compile(
    r"\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b\.?"
)
_ABSTAINING = re.compile(
    r"\b(?:I\s+(?:could\s+not|couldn't|cannot|can't|did\s+not|didn't)\s+find|"
    r"(?:the\s+)?(?:documents?|passages?|sources)\s+(?:do\s+not|don't|does\s+not|doesn't)\s+"
    r"(?:say|mention|contain|cover|answer))",
    re.IGNORECASE,
)
# "No, ..." answering a yes/no question is the answer, not a negated claim.
_ANSWER_PARTICLE = re.compile(r"^\s*(?:yes|no)\b[,.!]?", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|no|never|none|neither|nor|without|cannot)\b|n't\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“])")
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
# Function words on top of the keyword tokenizer's stop-words: they carry no claim.
_FUNCTION_WORDS = frozenset(
    [
        "also",
        "am",
        "been",
        "being",
        "can",
        "could",
        "did",
        "do",
        "does",
        "done",
        "had",
        "has",
        "have",
        "he",
        "her",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "its",
        "me",
        "my",
        "our",
        "ours",
        "she",
        "should",
        "so",
        "than",
        "them",
        "those",
        "us",
        "very",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "would",
        "you",
        "your",
        "yes",
        "about",
        "after",
        "all",
        "any",
        "before",
        "both",
        "each",
        "more",
        "most",
        "other",
        "over",
        "same",
        "some",
        "only",
        "up",
        "down",
        "out",
        "just",
        "may",
        "might",
        "must",
        "shall",
        "not",
        "no",
        "never",
        "none",
        "neither",
        "nor",
        "without",
        "cannot",
    ]
)


class SentenceEncoder(Protocol):
    """Unit-length embeddings, one row per text (``ingest.types.Embedder`` is one)."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class Weights:
    """The logistic combination: support = sigmoid(bias + the weighted features)."""

    bias: float
    coverage: float
    missing_numbers: float
    missing_names: float
    negation: float
    similarity: float = 0.0


# Fitted on the even half of HaluEval-QA (5,000 questions, right and hallucinated answers) by
# ``python bench/guards.py --calibrate``; the threshold is the highest that keeps false flags on that
# half at most 5% (all fully covered sentences score the same, so it flags 0.14% there). The MiniLM
# similarity gets no weight: on HaluEval it did not lower the misses at equal false flags (bench/README.md).
LEXICAL_WEIGHTS = Weights(bias=-25.421, coverage=26.677, missing_numbers=-6.095, missing_names=-4.864, negation=-9.852)
LEXICAL_THRESHOLD = 0.778
# Below this share of its words in the passages it cites, a sentence did not come from them. On
# HaluEval-QA's measured half it flags 0.02 points more right answers and catches 1.3 points more
# hallucinated ones (bench/README.md); on the answers of the dev sets' runs no right answer had less
# than 0.5, and 4 of the 13 answers to unanswerable questions did.
DRAWN_FLOOR = 0.5
# A shorter sentence ("Sure.", "Here is how.") claims too little to hold to it.
DRAWN_MIN_WORDS = 3


@dataclass(frozen=True, slots=True)
class Features:
    coverage: float
    missing_numbers: tuple[str, ...]
    missing_names: tuple[str, ...]
    missing_words: tuple[str, ...]
    negation: bool
    similarity: float | None
    drawn: float = 1.0
    undrawn: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Evidence:
    """The passages as the check reads them: stemmed words, numbers, and their sentences."""

    words: frozenset[str]
    numbers: frozenset[str]
    months: frozenset[str]
    sentences: tuple[str, ...]
    vectors: npt.NDArray[np.float32] | None = None  # one row per sentence, when there is an encoder


class Stage1:
    """The cheap check. ``encoder`` adds the MiniLM similarity to each sentence's report (an embedding
    per answer and passage sentence); it counts in the score only with weights that give it one."""

    def __init__(
        self,
        *,
        encoder: SentenceEncoder | None = None,
        weights: Weights | None = None,
        threshold: float | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        self.encoder = encoder
        self.weights = weights or LEXICAL_WEIGHTS
        self.threshold = LEXICAL_THRESHOLD if threshold is None else threshold
        self._tokenizer = tokenizer or Tokenizer()

    def words(self, text: str) -> list[str]:
        out = []
        for word in _WORD.findall(text.lower()):
            word = word.replace("’", "'").removesuffix("'s").strip("'")
            if word and word not in _FUNCTION_WORDS and not word.isdigit() and word not in _NUMBER_WORDS:
                out += self._tokenizer.tokens(word)
        return out

    def evidence(self, texts: Sequence[str], *, embed: bool = True) -> Evidence:
        joined = "\n".join(texts)
        sentences = tuple(s for text in texts for s in _SENTENCE.split(text) if s.strip())
        vectors = self.encoder.embed(sentences) if embed and self.encoder and sentences else None
        return Evidence(
            frozenset(self.words(joined)), frozenset(numbers(joined)), frozenset(months(joined)), sentences, vectors
        )

    def features(
        self, sentence: str, evidence: Evidence, question: str = "", facts: Evidence | None = None
    ) -> Features:
        """``facts``: where its numbers, months and names must be (default: ``evidence``)."""
        text = strip_markers(sentence)
        asked = frozenset(self.words(question))
        known = evidence.words | asked
        words = self.words(text)
        missing_words = tuple(w for w in dict.fromkeys(words) if w not in known)
        coverage = 1.0 - len(missing_words) / len(set(words)) if words else 1.0
        facts = facts or evidence
        known_numbers = facts.numbers | facts.months | frozenset(numbers(question) + months(question))
        missing_numbers = tuple(n for n in dict.fromkeys(numbers(text) + months(text)) if n not in known_numbers)
        known_names = facts.words | asked
        missing_names = tuple(name for name in names(text) if any(w not in known_names for w in self.words(name)))
        closest = max(evidence.sentences, key=lambda s: len(set(self.words(s)) & set(words)), default="")
        negation = bool(_NEGATION.search(_ANSWER_PARTICLE.sub("", text))) and not _NEGATION.search(closest)
        similarity = self._similarity(text, evidence) if self.encoder else None
        drawn = sum(w in facts.words for w in words) / len(words) if words else 1.0
        undrawn: tuple[str, ...] = ()
        if drawn < DRAWN_FLOOR and len(set(words)) >= DRAWN_MIN_WORDS:
            # What it says that its passages don't: its names, else its words.
            undrawn = tuple(n for n in names(text) if any(w not in facts.words for w in self.words(n)))
            undrawn = undrawn or tuple(w for w in dict.fromkeys(words) if w not in facts.words)[:3]
        return Features(coverage, missing_numbers, missing_names, missing_words, negation, similarity, drawn, undrawn)

    def _similarity(self, text: str, evidence: Evidence) -> float:
        assert self.encoder is not None
        if evidence.vectors is None or not len(evidence.vectors):
            return 0.0
        return float(np.max(evidence.vectors @ self.encoder.embed([text])[0]))

    def score(self, features: Features) -> float:
        w = self.weights
        z = (
            w.bias
            + w.coverage * features.coverage
            + w.missing_numbers * len(features.missing_numbers)
            + w.missing_names * len(features.missing_names)
            + w.negation * features.negation
            + w.similarity * (features.similarity or 0.0)
        )
        return 1.0 / (1.0 + math.exp(-z))

    def supported(self, features: Features, score: float) -> bool:
        hard = features.missing_numbers or features.missing_names or features.negation or features.undrawn
        return score >= self.threshold and not hard

    def check(
        self, answer: str, passages: Sequence[Passage], question: str = "", *, shown: Evidence | None = None
    ) -> Groundedness:
        """Every claim-making sentence of ``answer`` with its support score. ``shown``: the passages'
        evidence when already computed (an answer checked sentence by sentence computes it once)."""
        by_number = {p.number: p.text for p in passages}
        shown = shown or self.evidence([p.text for p in passages])
        out = []
        for sentence in claims(split_sentences(answer)):
            cited = [by_number[n] for n in sentence.cited if n in by_number]
            facts = self.evidence(cited, embed=False) if cited else shown
            features = self.features(sentence.text, shown, question, facts)
            score = self.score(features)
            out.append(
                SentenceSupport(
                    sentence=sentence.text,
                    start=sentence.start,
                    end=sentence.end,
                    cited=sentence.cited,
                    score=score,
                    lexical=features.drawn,
                    similarity=features.similarity,
                    judge=None,
                    missing_facts=features.missing_numbers
                    + features.missing_names
                    + (("not",) if features.negation else ()),
                    undrawn=features.undrawn,
                    missing_words=features.missing_words,
                    supported=self.supported(features, score),
                )
            )
        return Groundedness(tuple(out))


def months(text: str) -> list[str]:
    """The month names in ``text``, as their first three letters (``May``, ``Sept.`` → ``sep``)."""
    return list(dict.fromkeys(m.group()[:3].lower() for m in _MONTH.finditer(text)))


def numbers(text: str) -> list[str]:
    """The numbers in ``text``, thousands separators dropped; number words up to twenty as digits."""
    found = [m.group().replace(",", "") for m in _NUMBER.finditer(text)]
    found += [_NUMBER_WORDS[w] for w in _WORD.findall(text) if w in _NUMBER_WORDS]  # ``BBC One`` is a name
    return [n.rstrip("0").rstrip(".") if "." in n else n for n in found]


def names(text: str) -> list[str]:
    """Runs of capitalised words; a sentence's first word alone is not a name (``Parking is free``)."""
    out = []
    for match in _NAME.finditer(text):
        name = match.group()
        first, _, rest = name.partition(" ")
        if _sentence_initial(text, match.start()) and (not rest or first.lower() in _OPENERS):
            name = rest.strip()
        if name:
            out.append(name)
    return list(dict.fromkeys(out))


_OPENERS = _FUNCTION_WORDS | frozenset(
    ["the", "a", "an", "it", "this", "that", "these", "there", "in", "on", "at", "for", "to", "if", "as", "yes", "no"]
)


def _sentence_initial(text: str, at: int) -> bool:
    return not text[:at].strip() or text[:at].rstrip()[-1] in '.!?:"“('


def claims(sentences: Sequence[AnswerSentence]) -> list[AnswerSentence]:
    """The sentences that say something checkable: a word, and not the answer saying it has none."""
    return [s for s in sentences if _WORD.search(strip_markers(s.text)) and not _ABSTAINING.search(s.text)]
