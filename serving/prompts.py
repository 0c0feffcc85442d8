"""Versioned prompt templates (``prompts/<name>/<version>/{system,user}.j2``), rendered with jinja2.

A template's version string is ``name/version#<sha256 of both files, 8 hex>``: stored with every
answer, so an edited file without a new version folder still shows up as a different prompt.
Passages go in delimited, numbered blocks; a passage can't close its block early (``</passage>``
inside document text is neutralised), and the fixed instructions come first so that vLLM's prefix
cache reuses them across questions.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from serving.types import Message, Source
from sourcebook.errors import ErrorCode, SourcebookError

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "prompts"
ABSTAIN = "The documents don't say."
_CLOSING_TAG = "</passage"


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: str
    system: jinja2.Template
    user: jinja2.Template

    def render(self, **values: object) -> list[Message]:
        return [
            Message("system", self.system.render(**values).strip()),
            Message("user", self.user.render(**values).strip()),
        ]


def load_template(name: str, version: str, *, root: Path | None = None) -> PromptTemplate:
    folder = (root or DEFAULT_DIR) / name / version
    files = [folder / "system.j2", folder / "user.j2"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            f"prompt template {name}/{version} is missing {', '.join(missing)}",
            hint="set SOURCEBOOK_PROMPTS_DIR to a folder holding <name>/<version>/system.j2 and user.j2",
        )
    sources = [f.read_text(encoding="utf-8") for f in files]
    digest = hashlib.sha256("\0".join(sources).encode()).hexdigest()[:8]
    # Prompts are plain text for a model, not HTML; passage text is neutralised by _neutralise instead.
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701
    return PromptTemplate(name, f"{name}/{version}#{digest}", env.from_string(sources[0]), env.from_string(sources[1]))


def _neutralise(text: str) -> str:
    return text.replace(_CLOSING_TAG, "< /passage").replace("<passage", "< passage")


def fit_passages(sources: Sequence[Source], *, max_passages: int, max_chars: int) -> list[Source]:
    """Passages in rank order within the context budget; the last one that fits partly is cut."""
    kept: list[Source] = []
    left = max_chars
    for source in sources[:max_passages]:
        if left < 200:
            break
        text = source.text if len(source.text) <= left else source.text[: left - 1] + "…"
        kept.append(source if text == source.text else dataclasses.replace(source, text=text))
        left -= len(text)
    return kept


def answer_messages(
    template: PromptTemplate, *, assistant: str, question: str, sources: Sequence[Source]
) -> list[Message]:
    passages = [
        {
            "number": s.number,
            "title": _neutralise(s.title).replace('"', "'"),
            "date": _neutralise(s.date or "").replace('"', "'"),
            "text": _neutralise(s.text),
        }
        for s in sources
    ]
    return template.render(assistant=assistant, abstain=ABSTAIN, question=question, passages=passages)


def rewrite_messages(template: PromptTemplate, *, question: str, history: Sequence[Message]) -> list[Message]:
    turns = [{"role": m.role, "content": " ".join(m.content.split())[:1000]} for m in history if m.role != "system"]
    return template.render(question=question, history=turns)
