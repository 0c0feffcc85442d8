"""A tenant's policy for sensitive data, and redaction. Pure: the spans come from ``guardrails.sensitive``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from guardrails.types import Action, PolicyDecision, Sensitive

_RANK: dict[Action, int] = {"allow": 0, "redact": 1, "block": 2}


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """What to do with secrets and with personal data in a tenant's questions and answers.

    ``labels`` overrides the action for one kind (a presidio entity such as ``EMAIL_ADDRESS``, or a
    detect-secrets type such as ``AWS Access Key``)."""

    tenant: str = "default"
    version: int = 1
    secrets: Action = "block"
    pii: Action = "redact"
    labels: Mapping[str, Action] = field(default_factory=dict)

    def action_for(self, found: Sensitive) -> Action:
        if found.label in self.labels:
            return self.labels[found.label]
        return self.secrets if found.kind == "secret" else self.pii


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
