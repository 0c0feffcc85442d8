"""Normalisation before any rule or model looks at a text: NFKC, then invisible characters removed.

NFKC folds look-alike forms (full-width letters, ligatures, super- and subscripts) into the plain
ones, so ``ｉｇｎｏｒｅ`` meets the same rules as ``ignore``. Removed afterwards: format characters
(Unicode category Cf: zero-width spaces and joiners, bidirectional overrides, the tag characters
U+E0000-E007F), private-use (Co) and unassigned (Cn) code points, control characters other than tab,
newline and carriage return, and variation selectors (Mn, but invisible and used to hide bytes after
an emoji). Tag characters mirror ASCII one for one, so what they spell is kept aside as ``hidden``:
text that the reader never sees but a model may read.
"""

from __future__ import annotations

import unicodedata

from guardrails.types import Normalised

_DROP_CATEGORIES = frozenset({"Cf", "Co", "Cn"})
_KEEP_CONTROLS = frozenset("\t\n\r")
_TAG_FIRST = 0xE0000


def _variation_selector(code: int) -> bool:
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _invisible(char: str) -> bool:
    category = unicodedata.category(char)
    if category in _DROP_CATEGORIES:
        return True
    if category == "Cc":
        return char not in _KEEP_CONTROLS
    return _variation_selector(ord(char))


def hidden_tag_text(text: str) -> str:
    """What the Unicode tag characters in ``text`` spell (U+E0041 is a hidden ``A``)."""
    return "".join(chr(ord(c) - _TAG_FIRST) for c in text if _TAG_FIRST + 0x20 <= ord(c) <= _TAG_FIRST + 0x7E)


def normalise(text: str) -> Normalised:
    """``text`` in NFKC with invisible characters removed; how many were removed; the hidden tag text."""
    hidden = hidden_tag_text(text)
    folded = unicodedata.normalize("NFKC", text)
    kept = "".join(c for c in folded if not _invisible(c))
    return Normalised(kept, len(folded) - len(kept), hidden)
