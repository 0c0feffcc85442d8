"""Versioned prompt templates (``prompts/<name>/<version>/{system,user}.j2``), rendered with jinja2.

A template's version string is ``name/version#<sha256 of both files, 8 hex>``: stored with every
answer, so an edited file without a new version folder still shows up as a different prompt.
Passages go in delimited, numbered blocks; a passage can't close its block early (``</passage>``
inside document text is neutralised, in any case), and the fixed instructions come first so that
vLLM's prefix cache reuses them across questions. Document text, the question and the history can't
open a turn of their own either: every special token of the served model's tokenizer (and any
chat-template token shaped like one) is broken up before the chat template sees it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from answer.types import Message, Source
from sourcebook.errors import ErrorCode, SourcebookError

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "prompts"
ABSTAIN = "The documents don't say."
# What an employee is shown when the guards stop a question or an answer.
REFUSAL = "I can't help with that request."
_FENCE = re.compile(r"<(?=\s*/?\s*passage)", re.IGNORECASE)
# Chat-template tokens of the common families (ChatML and Qwen, Llama 3, DeepSeek, Llama 2, Gemma),
# for a served model whose tokenizer files aren't here to list its own.
_CHAT_TOKEN = re.compile(r"<\|[^<>|\s]{1,64}\|>|<｜[^<>｜]{1,64}｜>|\[/?INST\]|<</?SYS>>|</?s>|<(?:start|end)_of_turn>")
_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_TAG = re.compile(r"</?[A-Za-z][^<>\n]{0,500}>")
# What a follow-up that quotes the chosen passages (``chosen`` in follow.j2) may add to the prompt, all
# passages quoted together: the passage budget gives it up (answer.generation.passage_budget).
QUOTE_CHARS = 1000
# The passages a follow-up answers from: the first two chosen.
ANSWERED_FROM = 2


def _defang(token: str) -> str:
    """A special token as text that no tokenizer reads as the token (a space after its first character)."""
    return token[0] + " " + token[1:]


@dataclass(frozen=True, slots=True)
class Neutraliser:
    """Breaks up what would let text step out of its place in the prompt: passage fences and the
    served model's special tokens (``tokens``, longest first), plus any chat-template token."""

    tokens: tuple[str, ...] = ()

    def __call__(self, text: str) -> str:
        text = _FENCE.sub("< ", text)
        for token in self.tokens:
            if token in text:
                text = text.replace(token, _defang(token))
        return _CHAT_TOKEN.sub(lambda m: _defang(m.group()), text)


def special_tokens(folders: Iterable[Path]) -> tuple[str, ...]:
    """The special tokens that the tokenizers in these model folders declare (``tokenizer_config.json``
    and ``special_tokens_map.json``), longest first. Plain words are left out: breaking them up
    would mangle text, and no chat template builds a turn out of one."""
    found: set[str] = set()
    for folder in folders:
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            path = folder / name
            if path.is_file():
                found.update(_declared(json.loads(path.read_text(encoding="utf-8"))))
    return tuple(sorted((t for t in found if len(t) > 1 and not t.isalnum()), key=lambda t: (-len(t), t)))


def _declared(config: dict[str, Any]) -> Iterable[str]:
    for entry in config.get("added_tokens_decoder", {}).values():
        if isinstance(entry, dict) and entry.get("special") and isinstance(entry.get("content"), str):
            yield entry["content"]
    for key, value in config.items():
        if key.endswith("_token") or key == "additional_special_tokens":
            for item in value if isinstance(value, list) else [value]:
                content = item.get("content") if isinstance(item, dict) else item
                if isinstance(content, str):
                    yield content


def quotable(text: str, neutralise: Neutraliser) -> str:
    """Passage text to quote verbatim to the user: links and images reduced to their text, markup
    tags dropped (a client that renders Markdown or HTML would fetch or show them), tokens broken up."""
    return neutralise(_TAG.sub("", _LINK.sub(lambda m: m.group(1), text)))


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: str
    system: jinja2.Template
    user: jinja2.Template
    neutralise: Neutraliser = Neutraliser()
    # A two-step template's second user turn (``follow.j2``): the first asks which passage answers,
    # this one asks for the answer from the passage the model named.
    follow: jinja2.Template | None = None
    # Whether the follow-up quotes the chosen passages again, next to the question (``chosen``).
    quotes: bool = False

    def render(self, **values: object) -> list[Message]:
        return [
            Message("system", self.system.render(**values).strip()),
            Message("user", self.user.render(**values).strip()),
        ]


def load_template(
    name: str, version: str, *, root: Path | None = None, neutralise: Neutraliser | None = None
) -> PromptTemplate:
    folder = (root or DEFAULT_DIR) / name / version
    files = [folder / "system.j2", folder / "user.j2"]
    missing = [str(f) for f in files if not f.is_file()]
    if (folder / "follow.j2").is_file():
        files.append(folder / "follow.j2")
    if missing:
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            f"prompt template {name}/{version} is missing {', '.join(missing)}",
            hint="set SOURCEBOOK_PROMPTS_DIR to a folder holding <name>/<version>/system.j2 and user.j2",
        )
    sources = [f.read_text(encoding="utf-8") for f in files]
    digest = hashlib.sha256("\0".join(sources).encode()).hexdigest()[:8]
    # Prompts are plain text for a model, not HTML; what is put in is neutralised (Neutraliser) instead.
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701
    follow = sources[2] if len(sources) > 2 else None
    return PromptTemplate(
        name,
        f"{name}/{version}#{digest}",
        env.from_string(sources[0]),
        env.from_string(sources[1]),
        neutralise or Neutraliser(),
        env.from_string(follow) if follow is not None else None,
        quotes=follow is not None and "chosen" in jinja2.meta.find_undeclared_variables(env.parse(follow)),
    )


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
    clean = template.neutralise
    passages = [
        {
            "number": s.number,
            "title": clean(s.title).replace('"', "'"),
            "date": clean(s.date or "").replace('"', "'"),
            "section": clean(s.section).replace('"', "'"),
            "text": clean(s.text),
        }
        for s in sources
    ]
    return template.render(assistant=assistant, abstain=ABSTAIN, question=clean(question), passages=passages)


def follow_messages(
    template: PromptTemplate,
    messages: Sequence[Message],
    *,
    reply: str,
    numbers: Sequence[int],
    question: str,
    sources: Sequence[Source] = (),
) -> list[Message]:
    """A two-step template's conversation after the model named the passages that answer (its ``reply``):
    the follow-up sees them as ``numbers`` (and the first as ``number``), and the first two of
    ``sources`` among them as ``chosen`` (number, title, text; the texts within ``QUOTE_CHARS``), to
    quote them again next to the question: a small model then answers from them, not from memory or
    from a passage further up."""
    if template.follow is None:
        raise ValueError(f"{template.version} is a one-step template")
    clean = template.neutralise
    by_number = {s.number: s for s in sources}
    # A passage the injection screen flagged is not set last before the instruction, where a small
    # model would most likely follow it; it stays in its place among the others.
    quoted = [by_number[n] for n in numbers[:ANSWERED_FROM] if n in by_number and not by_number[n].flags]
    share = QUOTE_CHARS // max(len(quoted), 1)
    chosen = [
        {
            "number": s.number,
            "title": clean(s.title).replace('"', "'"),
            "text": clean(s.text if len(s.text) <= share else s.text[: share - 1] + "…"),
        }
        for s in quoted
    ]
    follow = template.follow.render(number=numbers[0], numbers=list(numbers), question=clean(question), chosen=chosen)
    return [*messages, Message("assistant", reply.strip()), Message("user", follow.strip())]


def chosen_passages(reply: str, sources: Sequence[Source]) -> tuple[int, ...]:
    """The passage numbers a selection reply names ("2", "[2]", "Passage 2.", "1, 3"), in its order,
    keeping only passages shown; none for 0 or no number."""
    shown = {s.number for s in sources}
    numbers = (int(n) for n in re.findall(r"\d+", reply))
    return tuple(dict.fromkeys(n for n in numbers if n in shown))


_EDITION_MARKS = re.compile(r"\b(?:\d{4}|v\d+(?:\.\d+)*|edition|version|rev(?:ision)?)\b|[^\w\s]", re.IGNORECASE)


def _family(title: str) -> str:
    """A document's title without its year, edition and version: two editions share it."""
    return " ".join(_EDITION_MARKS.sub(" ", title).lower().split())


def _superseded(old: Source, new: Source, family: Mapping[int, str], question: str) -> bool:
    """Whether ``new`` is a newer edition of ``old``'s document (same title but for year, edition and
    version; a later date) and the question does not name ``old``'s year."""
    return bool(
        old.date
        and new.date
        and new.date > old.date
        and old.date[:4] not in question
        and family[old.number]
        and family[new.number] == family[old.number]
    )


def with_newer_editions(numbers: Sequence[int], sources: Sequence[Source], question: str) -> tuple[int, ...]:
    """The chosen passages and, after them, any shown passage of a newer edition of a chosen one's
    document: an employee asking about a policy means the current one. Not when the question names the
    year of the edition chosen."""
    by_number = {s.number: s for s in sources}
    family = {s.number: _family(s.title) for s in sources}
    added: list[int] = []
    for chosen in (by_number[n] for n in numbers if n in by_number):
        added += [
            s.number
            for s in sources
            if s.number not in numbers and s.number not in added and _superseded(chosen, s, family, question)
        ]
    return (*numbers, *added)


def current_editions(numbers: Sequence[int], sources: Sequence[Source], question: str) -> tuple[int, ...]:
    """The chosen passages less any superseded by another chosen one (a newer edition of the same
    document), unless the question names its year: a template that answers from several passages
    then never sets two editions of one document side by side."""
    by_number = {s.number: s for s in sources}
    family = {s.number: _family(s.title) for s in sources}
    chosen = [by_number[n] for n in numbers if n in by_number]
    return tuple(old.number for old in chosen if not any(_superseded(old, new, family, question) for new in chosen))


def answered_from(template: PromptTemplate, reply: str, sources: Sequence[Source], question: str) -> tuple[int, ...]:
    """The passages a two-step template's answer step answers from, after the selection ``reply``: the
    ones it named, with any newer edition of them shown, without the superseded ones when the
    template quotes them (never two editions side by side), the newest first. Empty: none answers."""
    numbers = with_newer_editions(chosen_passages(reply, sources), sources, question)
    if template.quotes:
        numbers = current_editions(numbers, sources, question)
    return newest_first(numbers, sources)


def newest_first(numbers: Sequence[int], sources: Sequence[Source]) -> tuple[int, ...]:
    """The chosen passages with the most recently dated first (undated ones after, each group in the
    model's order): of two editions that both answer, the newer one is answered from."""
    dates = {s.number: s.date or "" for s in sources}
    return tuple(sorted(numbers, key=lambda n: dates.get(n, ""), reverse=True))


def rewrite_messages(template: PromptTemplate, *, question: str, history: Sequence[Message]) -> list[Message]:
    clean = template.neutralise
    turns = [
        {"role": m.role, "content": clean(" ".join(m.content.split())[:1000])} for m in history if m.role != "system"
    ]
    return template.render(question=clean(question), history=turns)
