"""Direct prompt injection in a question, in three layers: normalisation, rules, the classifier.

The verdict is the strictest of the layers. The classifier blocks at its block threshold and warns at
its warn threshold. In a question, quoted text is what the question is about, so the classifier's
block needs the question to score high with its quotations masked too; otherwise it only warns. That
keeps "What does 'ignore previous instructions' mean?" answerable while the rules still see the quote.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from guardrails.normalize import normalise
from guardrails.rules import QUOTATION, match_rules
from guardrails.types import Finding, InputVerdict, Verdict, worst


class Scorer(Protocol):
    """P(injection) for a text, with the thresholds it was calibrated for (``InjectionClassifier``)."""

    warn_at: float
    block_at: float

    def score(self, text: str) -> float: ...


def mask_quotations(text: str) -> str:
    """``text`` with each quotation replaced by a neutral placeholder."""
    return QUOTATION.sub('"quote"', text)


def _classifier_finding(text: str, score: float, scorer: Scorer) -> Finding | None:
    if score < scorer.warn_at:
        return None
    verdict: Verdict = "warn"
    detail = f"the classifier scores it {score:.2f} (warns at {scorer.warn_at:.2f})"
    if score >= scorer.block_at:
        masked = mask_quotations(text)
        if masked == text or "?" not in text or scorer.score(masked) >= scorer.block_at:
            verdict, detail = "block", f"the classifier scores it {score:.2f} (blocks at {scorer.block_at:.2f})"
        else:
            detail = f"the classifier scores it {score:.2f}, but {scorer.score(masked):.2f} without its quotations"
    return Finding("classifier", "classifier", verdict, detail, score=score)


def check_injection(question: str, scorer: Scorer | None = None) -> InputVerdict:
    """The input checks' verdict on a question (the classifier layer only when ``scorer`` is given)."""
    normal = normalise(question)
    findings: list[Finding] = []
    if normal.hidden:
        # Its length, never the text: what it spells may be a secret, and findings go to logs and clients.
        spelled = f"Unicode tag characters spell {len(normal.hidden)} hidden characters"
        findings.append(Finding("normalize", "hidden_text", "warn", spelled))
        findings.extend(match_rules(normal.hidden, check="rules_hidden"))
    elif normal.removed:
        findings.append(Finding("normalize", "invisible_characters", "allow", f"removed {normal.removed} characters"))
    findings.extend(match_rules(normal.text))
    score = None
    if scorer is not None:
        score = scorer.score(normal.text)
        found = _classifier_finding(normal.text, score, scorer)
        findings += [found] if found else []
        hidden = _classifier_finding(normal.hidden, scorer.score(normal.hidden), scorer) if normal.hidden else None
        findings += [replace(hidden, check="classifier_hidden")] if hidden else []
    verdict = worst(*(f.verdict for f in findings))
    reason = next((f.code for f in findings if f.verdict == verdict), None) if verdict != "allow" else None
    return InputVerdict(verdict, reason, normal.text, tuple(findings), score)
