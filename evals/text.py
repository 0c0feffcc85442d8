"""Text comparisons of the judge-free scores: SQuAD normalisation, containment, the content words a
passage and an answer share, and SQuAD's token F1."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from retrieval.tokenize import ENGLISH_STOP_WORDS

HOLD_SHARE = 0.6
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Lucene's stop words and the question words: what a passage and an answer share without saying the same.
_STOP = ENGLISH_STOP_WORDS | {"what", "which", "who", "whom", "when", "where", "why", "how", "can", "does", "do", "you"}


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains(text: str, value: str) -> bool:
    wanted = normalize(value)
    return bool(wanted) and f" {wanted} " in f" {normalize(text)} "


def content_words(text: str) -> set[str]:
    return {w for w in normalize(text).split() if len(w) > 2 and w not in _STOP}


def holds(passage: str, context: str) -> bool:
    """Whether a passage holds a reference context: one is mostly made of the other's content words."""
    p, c = content_words(passage), content_words(context)
    if min(len(p), len(c)) < 5:
        return False
    return len(p & c) / min(len(p), len(c)) >= HOLD_SHARE


def support(answer: str, contexts: Sequence[str]) -> float:
    words = content_words(answer)
    if not words:
        return 0.0
    known = set().union(*(content_words(c) for c in contexts))
    return len(words & known) / len(words)


def token_f1(text: str, reference: str) -> float:
    """SQuAD's token F1 of an answer against a reference, both normalised."""
    got, want = normalize(text).split(), normalize(reference).split()
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)
