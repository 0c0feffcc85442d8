"""The rules-only query rewriter: strip chatter, expand glossary terms, keep quoted phrases.

Used when no LLM is configured (and for first turns that need no context). Deterministic and cheap:
it never drops a content word. Quoted phrases are kept verbatim (and reported) so the keyword arm
still sees them. The glossary is per tenant (``glossary`` table): a query that uses a term (an
acronym, a product name) gets its expansions appended, unless they are already there.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from retrieval.types import Rewrite

_PHRASE = re.compile(r'"([^"]{1,200})"|“([^”]{1,200})”')
_LEADING = re.compile(
    r"^\s*(?:(?:hi|hello|hey|dear\s+\w+|good\s+(?:morning|afternoon|evening))\b[\s,!.:-]*)?"
    r"(?:(?:please|pls|kindly)\s+)?"
    r"(?:(?:can|could|would|will)\s+(?:you|u)\s+(?:please\s+)?(?:tell|show|explain\s+to|help)\s+me\s+"
    r"|i\s+(?:want|would\s+like|'d\s+like|need)\s+to\s+know\s+"
    r"|do\s+you\s+know\s+|tell\s+me\s+|i\s+was\s+wondering\s+)?",
    re.IGNORECASE,
)
_TRAILING = re.compile(
    r"[\s,]*(?:(?:thanks|thank\s+you|thx|please|pls)(?:\s+(?:so\s+much|a\s+lot|in\s+advance))?[\s!.]*)+$",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")

GlossaryLoader = Callable[[str], Mapping[str, Sequence[str]]]


class RulesRewriter:
    """``QueryRewriter`` without a model."""

    name = "rules"

    def __init__(self, glossary: GlossaryLoader | None = None, *, cache_s: float = 60.0) -> None:
        self._load = glossary
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Mapping[str, Sequence[str]]]] = {}
        self._lock = threading.Lock()

    def _glossary(self, tenant_id: str) -> Mapping[str, Sequence[str]]:
        if self._load is None:
            return {}
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(tenant_id)
            if hit is not None and now - hit[0] < self._cache_s:
                return hit[1]
        entries = self._load(tenant_id)
        with self._lock:
            self._cache[tenant_id] = (now, entries)
        return entries

    def rewrite(self, question: str, *, tenant_id: str, history: Sequence[tuple[str, str]] = ()) -> Rewrite:
        phrases = tuple(a or b for a, b in _PHRASE.findall(question))
        # Chatter is only stripped outside quotes: a quoted phrase is the user's exact words.
        text = question if question.lstrip().startswith(('"', "“")) else _LEADING.sub("", question, count=1)
        if not text.rstrip().endswith(('"', "”")):
            text = _TRAILING.sub("", text)
        text = _SPACES.sub(" ", text).strip() or _SPACES.sub(" ", question).strip()
        expansions: list[str] = []
        lowered = text.casefold()
        for term, extra in self._glossary(tenant_id).items():
            if re.search(rf"(?<!\w){re.escape(term.casefold())}(?!\w)", lowered):
                expansions.extend(e for e in extra if e.casefold() not in lowered and e not in expansions)
        if expansions:
            text = f"{text} ({'; '.join(expansions)})"
        method = "rules" if text != _SPACES.sub(" ", question).strip() else "none"
        return Rewrite(question, text, phrases, tuple(expansions), method)
