"""A tenant's policy: sensitive data, denied topics, unsupported sentences, answer length; redaction.

Pure: the spans come from ``guardrails.sensitive``, the stored versions from ``guardrails.policies``.
A policy is written and read as JSON (``/v1/policy``, ``sourcebook policy set``); ``from_json``
refuses anything it does not know, naming the field, so a typo never silently weakens a policy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, get_args

from guardrails.types import Action, PolicyDecision, Sensitive
from sourcebook.errors import ErrorCode, SourcebookError

# What happens to an answer sentence the groundedness check finds unsupported: dropped before it is
# shown, shown with a mark, or the whole answer held for a person.
UnsupportedAction = Literal["remove", "mark", "review"]
# What happens to a question or an answer on a denied topic.
TopicAction = Literal["abstain", "block", "review"]
# What happens to an answer longer than the policy allows: cut at the last sentence that fits, or held.
LengthAction = Literal["truncate", "review"]
# What happens to a question the injection checks only warn about: answered, or answered and held.
WarnAction = Literal["allow", "review"]
# How an answer is released: each sentence once it passed its checks, or the whole answer once all of
# it did (a stopped answer then never shows a first sentence, at the cost of streaming).
Release = Literal["sentences", "whole"]

_RANK: dict[Action, int] = {"allow": 0, "redact": 1, "block": 2}


@dataclass(frozen=True, slots=True)
class DeniedTopic:
    """A subject the tenant's assistant must not discuss: matched by a keyword (whole words, any case)
    in the question or the answer, or by the question's similarity to an example question."""

    name: str
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    action: TopicAction = "abstain"

    def mentioned_in(self, text: str) -> bool:
        """Whether ``text`` has one of the keywords as whole words, in any case."""
        return any(re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text, re.IGNORECASE) for k in self.keywords)


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """What a tenant's guards do. ``version`` is the stored version (each ``set`` adds one), recorded
    in every answer's provenance.

    ``secrets`` and ``pii`` apply to questions and answers alike; ``labels`` overrides the action for
    one kind (a presidio entity such as ``EMAIL_ADDRESS``, or a detect-secrets type such as ``AWS
    Access Key``). An answer whose least supported sentence scores below ``review_below`` is held for
    review (0: never)."""

    tenant: str = "default"
    version: int = 0
    secrets: Action = "block"
    pii: Action = "redact"
    labels: Mapping[str, Action] = field(default_factory=dict)
    injection_warn: WarnAction = "allow"
    unsupported: UnsupportedAction = "remove"
    review_below: float = 0.0
    denied_topics: tuple[DeniedTopic, ...] = ()
    max_answer_chars: int | None = None
    too_long: LengthAction = "truncate"
    release: Release = "sentences"

    def action_for(self, found: Sensitive) -> Action:
        if found.label in self.labels:
            return self.labels[found.label]
        return self.secrets if found.kind == "secret" else self.pii

    def to_json(self) -> dict[str, Any]:
        """The policy's settings as JSON (tenant and version are where it is stored, not in it)."""
        return {
            "secrets": self.secrets,
            "pii": self.pii,
            "labels": dict(self.labels),
            "injection_warn": self.injection_warn,
            "unsupported": self.unsupported,
            "review_below": self.review_below,
            "denied_topics": [
                {"name": t.name, "keywords": list(t.keywords), "examples": list(t.examples), "action": t.action}
                for t in self.denied_topics
            ],
            "max_answer_chars": self.max_answer_chars,
            "too_long": self.too_long,
            "release": self.release,
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Any], *, tenant: str = "default", version: int = 0) -> TenantPolicy:
        """A policy from its JSON; fields left out keep their defaults. Raises ``invalid_request``
        naming the first field that is unknown or out of range."""
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            _invalid(unknown[0], f"is not a policy field (fields: {', '.join(_FIELDS)})")
        values: dict[str, Any] = {}
        for name, allowed in _CHOICES.items():
            if name in body:
                values[name] = _choice(name, body[name], allowed)
        if "labels" in body:
            values["labels"] = _labels(body["labels"])
        if "review_below" in body:
            values["review_below"] = _fraction("review_below", body["review_below"])
        if "max_answer_chars" in body:
            values["max_answer_chars"] = _length(body["max_answer_chars"])
        if "denied_topics" in body:
            values["denied_topics"] = _topics(body["denied_topics"])
        return cls(tenant=tenant, version=version, **values)


_ACTIONS = get_args(Action)
_CHOICES: dict[str, tuple[str, ...]] = {
    "secrets": _ACTIONS,
    "pii": _ACTIONS,
    "injection_warn": get_args(WarnAction),
    "unsupported": get_args(UnsupportedAction),
    "too_long": get_args(LengthAction),
    "release": get_args(Release),
}
_FIELDS = tuple(TenantPolicy().to_json())
_MAX_TOPIC_WORDS = 200


def _invalid(name: str, problem: str) -> NoReturn:
    raise SourcebookError(ErrorCode.INVALID_REQUEST, f"policy field {name!r} {problem}")


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        _invalid(name, f"must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _labels(value: object) -> dict[str, Action]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        _invalid("labels", "must map a detector label to an action")
    return {k: _choice(f"labels.{k}", v, _ACTIONS) for k, v in value.items()}


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
        _invalid(name, f"must be a number from 0 to 1, not {value!r}")
    return float(value)


def _length(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 20:
        _invalid("max_answer_chars", f"must be null or a whole number of at least 20, not {value!r}")
    return value


def _strings(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        _invalid(name, "must be a list of non-empty strings")
    if len(value) > _MAX_TOPIC_WORDS:
        _invalid(name, f"takes at most {_MAX_TOPIC_WORDS} entries")
    return tuple(v.strip() for v in value)


def _topics(value: object) -> tuple[DeniedTopic, ...]:
    if not isinstance(value, list):
        _invalid("denied_topics", "must be a list of topics")
    topics: list[DeniedTopic] = []
    for i, item in enumerate(value):
        where = f"denied_topics[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            _invalid(where, "must be an object with a non-empty name")
        extra = sorted(set(item) - {"name", "keywords", "examples", "action"})
        if extra:
            _invalid(f"{where}.{extra[0]}", "is not a topic field (name, keywords, examples, action)")
        keywords = _strings(f"{where}.keywords", item.get("keywords", []))
        examples = _strings(f"{where}.examples", item.get("examples", []))
        if not keywords and not examples:
            _invalid(where, "needs keywords or examples")
        action = _choice(f"{where}.action", item.get("action", "abstain"), get_args(TopicAction))
        topics.append(DeniedTopic(item["name"].strip(), keywords, examples, action))
    return tuple(topics)


def placeholder(found: Sensitive) -> str:
    label = "".join(c if c.isalnum() else "_" for c in found.label.upper()).strip("_")
    return f"[{label}]"


def redact(text: str, spans: Sequence[Sensitive]) -> str:
    """``text`` with each span replaced by its placeholder; overlapping spans become one (the first's label)."""
    out: list[str] = []
    cursor = 0
    for found in sorted(spans, key=lambda s: (s.start, -s.end)):
        if found.end <= cursor:
            continue
        if found.start >= cursor:
            out += [text[cursor : found.start], placeholder(found)]
        cursor = max(cursor, found.end)
    out.append(text[cursor:])
    return "".join(out)


def decide(text: str, found: Sequence[Sensitive], policy: TenantPolicy) -> PolicyDecision:
    """The strictest action the policy takes on any span. ``text`` of the decision is always safe to
    pass on, log or store: every span the policy does not allow is redacted, also when it blocks."""
    actions = [(policy.action_for(s), s) for s in found]
    action: Action = max((a for a, _ in actions), key=_RANK.__getitem__, default="allow")
    hidden = [s for a, s in actions if a != "allow"]
    reason = next((f"{s.kind}:{s.label}" for a, s in actions if a == action), None) if action != "allow" else None
    return PolicyDecision(action, redact(text, hidden), tuple(found), reason)
