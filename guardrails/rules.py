"""Phrase and regex rules for prompt injection in a question (or a passage): the maintained layer.

Each rule has a stable reason code and the verdict it recommends. A rule that would block is only a
warning when its match is mentioned rather than said: quoted or after a colon inside a question
(``What does "ignore previous instructions" mean?``), or negated (``do not reveal your system
prompt``). People ask about attacks, and such a question is not one. Rules see normalised text
(``guardrails.normalize``), so look-alike letters and zero-width characters do not hide a phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guardrails.types import Finding, Verdict, worst


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    verdict: Verdict
    pattern: re.Pattern[str]
    about: str


def _rule(code: str, verdict: Verdict, about: str, pattern: str, flags: int = re.IGNORECASE) -> Rule:
    return Rule(code, verdict, re.compile(pattern, flags), about)


_VERB_IGNORE = r"(?:ignore|disregard|forget|override|overrule|skip|discard|abandon|drop)"
_EARLIER = r"(?:previous|prior|above|earlier|preceding|foregoing|former|initial|original|system|old|your)"
_ORDERS = (
    r"(?:instructions?|prompts?|rules|directions?|guidelines|directives?|commands?|context|programming|"
    r"guardrails|restrictions|constraints|orders)"
)
_REVEAL = r"(?:repeat|print|recite|reveal|dump|output|echo|leak|expose|reproduce|display|show|disclose)"

RULES: tuple[Rule, ...] = (
    _rule(
        "override_instructions",
        "block",
        "tells the model to drop the instructions it was given",
        rf"\b{_VERB_IGNORE}\s+(?:\w+\s+){{0,3}}?{_EARLIER}\s+(?:\w+\s+){{0,2}}?{_ORDERS}\b"
        rf"|\b{_VERB_IGNORE}\s+(?:all|any|every)\s+(?:of\s+)?(?:the\s+|your\s+)?(?:instructions|prompts|directives)\b"
        r"|\bforget\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before)",
    ),
    _rule(
        "ignore_documents",
        "block",
        "tells the model to answer without the passages it is shown",
        r"\b(?:ignore|disregard|forget|skip|do\s+not\s+use|don'?t\s+use|without\s+using)\s+"
        r"(?:the\s+|your\s+|any\s+|all\s+|these\s+)?(?:provided\s+|given\s+|retrieved\s+|supplied\s+)?"
        r"(?:documents?|passages?|context|sources|knowledge\s+base|search\s+results)\b"
        r"(?!\s+(?:from|about|of|in|on|dated|before|after|for|that|which|older|newer|titled|called|named))"
        r"|\banswer\s+(?:only\s+)?(?:from|using|with|based\s+on)\s+(?:your\s+)?"
        r"(?:own|general|prior|world|training|internal)\s+knowledge\b",
    ),
    _rule(
        "prompt_extraction",
        "block",
        "asks for the system prompt or the text before the question",
        rf"\b(?:{_REVEAL}|tell\s+me|give\s+me|write\s+out|what\s+(?:is|are|was|were))\s+(?:\w+\s+){{0,3}}?"
        r"(?:your|the|this|its)\s+(?:\w+\s+)?(?:system|initial|original|hidden|secret|developer|internal)\s+"
        r"(?:prompt|message|instructions?)\b"
        rf"|\b{_REVEAL}\s+(?:me\s+)?(?:back\s+)?(?:all\s+|everything\s+|exactly\s+|verbatim\s+)?(?:of\s+)?"
        r"(?:the\s+)?(?:text|words|content|message|lines|instructions?|prompt|everything)\s+"
        r"(?:above|before\s+(?:this|my)|preceding|that\s+came\s+before|at\s+the\s+(?:start|beginning))"
        rf"|\b{_REVEAL}\b.{{0,30}}\byour\s+(?:\w+\s+)?(?:rules|instructions|guidelines|directives|prompt|configuration)\b",
    ),
    _rule(
        "rules_question",
        "warn",
        "asks the assistant to list its own rules",
        r"\b(?:list|tell\s+me|show\s+me|what\s+are|give\s+me|share|enumerate)\b.{0,20}\byour\s+(?:own\s+)?"
        r"(?:rules|instructions|guidelines|directives|prompt)\b",
    ),
    _rule(
        "jailbreak_persona",
        "block",
        "a persona or mode that claims to have no rules",
        r"\bdo\s+anything\s+now\b"
        r"|\b(?:DAN|jailbreak|jailbroken|god|unrestricted|unfiltered|uncensored|evil|no[-\s]restrictions)\s+mode\b"
        r"|\byou\s+(?:are\s+)?(?:now\s+)?(?:in|entering|switched\s+to)\s+developer\s*-?\s*mode\b"
        r"|\byou\s+are\s+(?:now\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|amoral)\b"
        r"|\byou\s+are\s+no\s+longer\s+(?:bound|restricted|limited|an?\s+ai|an?\s+assistant)\b"
        r"|\b(?:pretend|imagine|act\s+as\s+if|act\s+like)\s+(?:that\s+)?you\s+(?:are|have)\s+"
        r"(?:no|not\s+bound|free\s+of|an?\s+(?:unrestricted|unfiltered|uncensored|evil))\b"
        r"|\b(?:respond|answer|reply|act|speak|talk)\s+(?:\w+\s+){0,3}?without\s+(?:any\s+)?"
        r"(?:restrictions|limitations|filters|censorship|safety|guidelines|rules|refusing|refusals)\b",
    ),
    _rule(
        "jailbreak_persona",
        "block",
        "the DAN persona",
        r"\b(?:you\s+are|you're|act\s+as|become|play|be)\s+(?:now\s+)?DAN\b|\bDAN\s+mode\b|\bDAN\b.{0,40}\bdo\s+anything\b",
        0,
    ),
    _rule(
        "safety_bypass",
        "block",
        "tells the model to switch off its own safeguards",
        r"\b(?:bypass|disable|override|turn\s+off|ignore|circumvent|get\s+around|break\s+free\s+of|escape)\s+"
        r"(?:all\s+)?(?:of\s+)?your\s+(?:\w+\s+)?(?:filters?|guardrails?|safeguards?|restrictions|rules|safety|"
        r"programming|guidelines|training|alignment|content\s+policy|moderation|limitations|chains)\b",
    ),
    _rule(
        "fake_delimiter",
        "block",
        "markup that pretends to end the passages or start a system message",
        r"<\s*/?\s*(?:system|passage|passages|context|document|instructions?|assistant|im_start|im_end)\s*>"
        r"|<\|(?:im_start|im_end|system|endoftext|eot_id|start_header_id|end_header_id)\|>"
        r"|\[/?INST\]|\[/?SYS\]|<<\s*/?SYS\s*>>"
        r"|(?m:^\s*#{2,}\s*(?:system|new\s+instructions?|instructions?)\b)"
        r"|(?m:^\s*(?:system|assistant)\s*:)",
    ),
    _rule(
        "fake_delimiter",
        "block",
        "an upper-case banner that pretends to end the passages",
        r"\b(?:END|BEGIN|START)\s+(?:OF\s+)?(?:THE\s+)?(?:PASSAGES?|DOCUMENTS?|CONTEXT|SYSTEM|INSTRUCTIONS|PROMPT|SOURCES)\b",
        0,
    ),
    _rule(
        "new_instructions",
        "block",
        "hands the model a new task or role",
        r"\bnew\s+(?:system\s+)?(?:instructions?|rules|directives?)\s*:"
        r"|\byour\s+(?:new|real|true|actual)\s+(?:task|role|instructions?|goal|purpose|job|objective)\s+(?:is|are|will\s+be)\b"
        r"|\bfrom\s+now\s+on,?\s+(?:you\s+(?:will|must|shall|are\s+to)|respond|answer|reply|act)\b",
    ),
    _rule(
        "exact_output",
        "warn",
        "dictates a string for the model to print",
        r"\b(?:say|print|output|respond\s+with|reply\s+with|answer\s+with|write|type)\s+(?:only\s+)?"
        r"(?:exactly|verbatim|the\s+(?:word|phrase|string|token|text))\s*[:\"'“]",
    ),
    _rule(
        "encoded_instructions",
        "warn",
        "asks the model to decode a payload and act on it",
        r"\b(?:decode|decrypt|deobfuscate|base64|rot13|rot-13|hex-?decode)\b.{0,60}\b(?:follow|execute|run|obey|do\s+what|"
        r"carry\s+out|act\s+on)\b",
    ),
)

QUOTATION = re.compile(r"\"[^\"\n]{2,}\"|“[^”\n]{2,}”|‘[^’\n]{2,}’|«[^»\n]{2,}»|(?<!\w)'[^'\n]{2,}'(?!\w)|`[^`\n]{2,}`")
_ASKING = re.compile(
    r"\?|^\s*(?:what|how|why|when|where|who|which|explain|define|describe|give\s+an?\s+example)\b", re.IGNORECASE
)


_NEGATED = re.compile(r"\b(?:do\s+not|don't|never|not|nothing\s+about|no\s+need\s+to)\b[^.!?]{0,30}$", re.IGNORECASE)


def _mentioned(text: str, start: int, end: int) -> bool:
    """The match is talked about rather than said: quoted or after a colon in a question, or negated."""
    if _NEGATED.search(text[:start]):
        return True
    if not _ASKING.search(text):
        return False
    if ":" in text[max(0, start - 3) : start]:
        return True
    return any(q.start() <= start and end <= q.end() for q in QUOTATION.finditer(text))


def match_rules(text: str, *, check: str = "rules") -> tuple[Finding, ...]:
    """Every rule code that matches ``text`` (already normalised) once, with its strictest match."""
    by_code: dict[str, list[Finding]] = {}
    for rule in RULES:
        for match in rule.pattern.finditer(text):
            by_code.setdefault(rule.code, []).append(_finding(rule, text, match, check))
    return tuple(worst_finding(found) for found in by_code.values())


def _finding(rule: Rule, text: str, match: re.Match[str], check: str) -> Finding:
    verdict, detail = rule.verdict, rule.about
    if verdict == "block" and _mentioned(text, match.start(), match.end()):
        verdict, detail = "warn", f"{rule.about} (mentioned, not asked for)"
    return Finding(check, rule.code, verdict, detail, match.start(), match.end())


def worst_finding(findings: list[Finding]) -> Finding:
    """The first of the findings with the strictest verdict."""
    strictest = worst(*(f.verdict for f in findings))
    return next(f for f in findings if f.verdict == strictest)
