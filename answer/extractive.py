"""The answer when no model endpoint answers in time: the top passages quoted, each cited,
labelled as such."""

from __future__ import annotations

from collections.abc import Sequence

from answer.prompts import Neutraliser, quotable
from answer.types import Source

EXTRACTIVE_NOTE = "The language model is unavailable right now, so these are the most relevant passages, quoted:"
_EXTRACTIVE_PASSAGES = 3
_EXTRACTIVE_CHARS = 320


def extractive_answer(sources: Sequence[Source], neutralise: Neutraliser) -> str:
    lines = [EXTRACTIVE_NOTE, ""]
    for source in sources[:_EXTRACTIVE_PASSAGES]:
        text = " ".join(quotable(source.text, neutralise).split())
        if len(text) > _EXTRACTIVE_CHARS:
            text = text[: _EXTRACTIVE_CHARS - 1] + "…"
        lines.append(f"- {quotable(source.title, neutralise)}: “{text}” [{source.number}]")
    return "\n".join(lines)
