"""One answer's sentence gate: fed the model's text as it streams, it lets out whole sentences, each
only after it passed every check (``guardrails.answering`` builds one per answer, under the tenant's
policy).

Per sentence: a repeat of the system prompt (removed; the third stops the answer), the canary,
instructions echoed from a passage (these stop it), links no passage has (removed from the
sentence), secrets (stop) and personal data no passage shown holds (redacted) as the policy says,
denied topics, the answer's length, and stage-1 groundedness (stage 2, the local model as a judge,
only where stage 1 cannot decide, when a judge is given). An unsupported sentence is removed, marked
or sent to review as the policy says; when every claim was removed the answer is the abstention with
the closest sources. A held answer (the question looked like an attack) is let out only at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import anyio

from answer.prompts import ABSTAIN
from answer.types import Checked, Finding, Released, Screened, SentenceScore
from guardrails.canary import canary_instruction, check_canary, new_canary
from guardrails.groundedness import Stage1
from guardrails.indirect import instruction_findings
from guardrails.judge import Judge, judge_sentences
from guardrails.policy import TenantPolicy, decide
from guardrails.sensitive import SensitiveScanner
from guardrails.sentences import cited_numbers, split_sentences
from guardrails.types import Finding as GuardFinding
from guardrails.types import Groundedness, Passage, Sensitive

MARK = " (not found in the documents)"
_LINK = re.compile(r"!\[[^\]]*\]\([^)]*\)|\[([^\]]*)\]\((?:[^)]*)\)|\bhttps?://[^\s<>\"')\]]+|\bwww\.[^\s<>\"')\]]+")

# An answer sentence sharing a run of this many words with the system prompt repeats it: the first
# sentence of a leaked prompt is caught before it is shown, where the canary at the prompt's end would
# be seen only at the end of the leak. Small models also parrot a rule now and then: such a sentence
# is removed, and only the ``ECHO_BLOCK``-th stops the answer.
ECHO_WORDS = 8
ECHO_BLOCK = 3
# The longest text held while waiting for a sentence to end.
MAX_SENTENCE_CHARS = 400


def as_finding(found: GuardFinding, *, flag: bool | None = None) -> Finding:
    """A guard library finding as the answer stage records it."""
    return Finding(found.check, found.code, found.detail, flag=found.verdict != "allow" if flag is None else flag)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A sentence that passed every check but groundedness, with its stage-1 report."""

    shown: str
    report: Groundedness


@dataclass(slots=True)
class _Account:
    findings: list[Finding]
    sentences: list[SentenceScore]
    review: list[str]
    shown_chars: int = 0
    claims_shown: int = 0
    claims_removed: int = 0
    blocked: bool = False
    full: bool = False
    echoes: int = 0


class AnswerGate:
    """One answer's gate: a state machine fed the answer's text, letting out whole checked sentences."""

    def __init__(
        self,
        *,
        policy: TenantPolicy,
        prompt: str,
        screened: Screened,
        passages: tuple[Passage, ...],
        flagged: frozenset[int],
        scanner: SensitiveScanner,
        stage1: Stage1,
        judge: Judge | None,
    ) -> None:
        self._policy = policy
        self._screened = screened
        self._passages = passages
        self._flagged = flagged
        self._shown_text = "\n".join(p.text for p in passages)
        self._scanner = scanner
        self._stage1 = stage1
        self._judge = judge
        self._evidence = stage1.evidence([p.text for p in passages])
        self._prompt = _shingles(prompt, exclude="\n".join(p.text for p in passages))
        self._canary = new_canary()
        self._buffer = ""
        self._space = ""
        self._skip = False
        self._quoting = False
        self._held: list[str] = []
        self._account = _Account([], [], list(screened.review))

    @property
    def system_note(self) -> str:
        return canary_instruction(self._canary)

    async def feed(self, text: str) -> Released:
        if self._account.blocked or self._account.full:
            return Released("", self._account.blocked, self._account.full)
        self._buffer += text
        sentences = split_sentences(self._buffer)
        if len(sentences) < 2:
            if len(self._buffer) <= MAX_SENTENCE_CHARS:
                return Released("")
            # A run-on (a list, code, an answer without full stops) is checked and let out in pieces cut
            # at white space, so that streaming and the stop of a stopped answer don't wait for its end.
            cut = self._buffer.rfind(" ", 0, MAX_SENTENCE_CHARS) + 1 or MAX_SENTENCE_CHARS
            done, self._buffer = self._buffer[:cut], self._buffer[cut:]
            return await self._let_out(done)
        # The last sentence may still grow (its full stop or its citation marker can be yet to come).
        done, self._buffer = self._buffer[: sentences[-1].start], self._buffer[sentences[-1].start :]
        return await self._let_out(done)

    def quoting(self) -> None:
        self._quoting = True

    async def close(self) -> Released:
        tail, self._buffer = self._buffer, ""
        released = await self._let_out(tail) if not (self._account.blocked or self._account.full) else Released("")
        if self._account.blocked:
            return Released("", True)
        text = "".join(self._held) + released.text if self._screened.hold else released.text
        account = self._account
        if account.claims_removed and not account.claims_shown:
            account.findings.append(Finding("groundedness", "nothing_supported", "no sentence was supported"))
            closest = "".join(f"[{p.number}]" for p in self._passages[:2])
            text += (" " if account.shown_chars else "") + f"{ABSTAIN} The closest passages: {closest}"
        return Released(text)

    def checked(self) -> Checked:
        account = self._account
        return Checked(
            tuple(account.findings),
            tuple(account.sentences),
            tuple(dict.fromkeys(account.review)),
            self._policy.version,
        )

    async def _let_out(self, text: str) -> Released:
        out: list[str] = []
        last = 0
        for sentence in split_sentences(text):
            self._white(text[last : sentence.start])
            last = sentence.end
            passed = await self._sentence(sentence.text)
            if self._account.blocked:
                return Released("", True)
            if passed is None:
                self._skip = True
            else:
                out.append((self._space if self._account.shown_chars else "") + passed)
                self._account.shown_chars += len(out[-1])
                self._space, self._skip = "", False
            if self._account.full:
                break
        self._white(text[last:])
        released = "".join(out)
        if self._screened.hold:
            self._held.append(released)
            return Released("", done=self._account.full)
        return Released(released, done=self._account.full)

    def _white(self, space: str) -> None:
        """White space between sentences goes out with the next sentence shown; after a removed one it
        is dropped, so that the sentences around it keep the one gap there was before it."""
        if not self._skip:
            self._space += space

    async def _sentence(self, text: str) -> str | None:
        """The sentence as it may be shown, or None when it is removed; sets ``blocked`` to stop.

        The checks are CPU work: they run in a worker thread, so the event loop goes on serving other
        requests and hears a client leave (the cancellation then reaches the model's stream)."""
        pending = await anyio.to_thread.run_sync(self._checked_sentence, text)
        if not isinstance(pending, _Pending):
            return pending
        report = pending.report
        if self._judge is not None and report.unsupported:
            # Stage 2 only where stage 1 cannot decide: it skips sentences with a missing fact itself.
            report = await judge_sentences(self._judge, report, self._passages, question=self._screened.question)
        return self._grounded(pending.shown, report)

    def _checked_sentence(self, text: str) -> str | _Pending | None:
        """Every check but the judge: the sentence's fate, or its stage-1 report still to be settled."""
        account = self._account
        found = [] if self._quoting else self._output_findings(text)
        if not self._quoting and not found and self._echoes_prompt(text):
            return None
        blocking = [f for f in found if f.verdict == "block" and f.code != "foreign_link"]
        if blocking:
            account.findings += [as_finding(f) for f in blocking]
            account.blocked = True
            return None
        text = self._without_foreign_links(text)
        decision = decide(text, self._answer_sensitive(text), self._policy)
        if decision.action == "block":
            account.findings.append(Finding("sensitive", "block", decision.reason or "", flag=True))
            account.blocked = True
            return None
        shown = text
        if decision.action == "redact":
            account.findings.append(Finding("sensitive", "redact", decision.reason or "", flag=False))
            shown = decision.text
        if self._topic_stops(text):
            return None
        fitted = self._fitted(shown)
        if fitted is None:
            return None
        shown = fitted
        self._cites_flagged(text)
        if self._quoting:
            account.sentences.append(SentenceScore(shown, None, True, "shown"))
            return shown
        # Support is judged on what the model wrote; a placeholder would read as a name no passage has.
        report = self._stage1.check(text, self._passages, self._screened.question, shown=self._evidence)
        return _Pending(shown, report)

    def _output_findings(self, text: str) -> list[GuardFinding]:
        leak = check_canary(text, self._canary)
        return ([leak] if leak else []) + list(instruction_findings(text, self._passages))

    def _echoes_prompt(self, text: str) -> bool:
        """A sentence that repeats the system prompt is removed; the third one stops the answer (a
        prompt being printed, as "repeat the text above" asks), so none of it is ever shown."""
        repeated = sorted(_shingles(text) & self._prompt)
        if not repeated:
            return False
        account = self._account
        account.echoes += 1
        words = ECHO_WORDS + len(repeated) - 1
        account.findings.append(
            Finding("prompt", "prompt_echo", f"a sentence repeated {words}+ words of the system prompt")
        )
        account.sentences.append(SentenceScore("", None, False, "removed"))
        account.claims_removed += 1
        account.blocked = account.echoes >= ECHO_BLOCK
        return True

    def _without_foreign_links(self, text: str) -> str:
        def keep(match: re.Match[str]) -> str:
            link = match.group(0)
            if any(part and part.lower() in self._shown_text.lower() for part in re.findall(r"\(([^)\s]+)", link)):
                return link
            if not link.startswith(("!", "[")) and link.rstrip(".,;:!?").lower() in self._shown_text.lower():
                return link
            self._account.findings.append(Finding("indirect", "foreign_link", "removed a link that no passage has"))
            return match.group(1) or "" if link.startswith("[") else ""

        kept = _LINK.sub(keep, text)
        # Tidy only where a link was taken out: code, lists and paragraphs keep their white space.
        return kept if kept == text else re.sub(r"(?<=\S) {2,}(?=\S)", " ", kept).strip()

    def _answer_sensitive(self, text: str) -> tuple[Sensitive, ...]:
        """Secrets always count; personal data counts only when no passage shown holds it (an answer
        may repeat a phone number from a document the employee may read), unless a label says so."""
        shown = self._shown_text
        return tuple(
            s
            for s in self._scanner.scan(text)
            if s.kind == "secret" or s.label in self._policy.labels or text[s.start : s.end] not in shown
        )

    def _cites_flagged(self, text: str) -> None:
        """A sentence resting on a passage the injection screen marked: shown, and held for review."""
        marked = sorted(set(cited_numbers(text)) & self._flagged)
        if marked:
            cited = ", ".join(f"[{n}]" for n in marked)
            self._account.findings.append(
                Finding("indirect", "cites_marked_passage", f"cites {cited}, marked at ingestion")
            )
            self._account.review.append("marked_passage")

    def _topic_stops(self, text: str) -> bool:
        for topic in self._policy.denied_topics:
            if topic.mentioned_in(text):
                self._account.findings.append(Finding("policy", "denied_topic", f"the answer is about {topic.name!r}"))
                if topic.action == "review":
                    self._account.review.append(f"topic:{topic.name}")
                    return False
                self._account.blocked = True
                return True
        return False

    def _fitted(self, text: str) -> str | None:
        """The sentence as the answer's length limit lets it out: whole, or, past the limit, none (the
        answer ends at the last sentence that fits) or, for an answer's first sentence, cut at white
        space before the limit; with ``too_long="review"`` it goes out whole, for a person to see."""
        limit = self._policy.max_answer_chars
        account = self._account
        if limit is None or account.shown_chars + len(text) <= limit:
            return text
        if self._policy.too_long == "review":
            account.review.append("too_long")
            return text
        account.findings.append(Finding("policy", "truncated", f"the answer was cut at {limit} characters"))
        account.full = True
        if account.shown_chars:
            return None
        # The sentence's citation markers go out with what is kept of it.
        markers = "".join(dict.fromkeys(re.findall(r"\[\d+\]", text)))
        room = max(1, limit - 1 - len(markers))
        cut = text.rfind(" ", 0, room)
        return text[: cut if cut > 0 else room].rstrip() + "…" + markers

    def _grounded(self, shown: str, report: Groundedness) -> str | None:
        account = self._account
        if not report.sentences:
            account.sentences.append(SentenceScore(shown, None, True, "shown"))
            return shown
        score = min(s.score for s in report.sentences)
        # Acted on: a number, date, name or negation that no passage has (certain), a sentence that
        # took less than half its words from its passages and no judge found supported, or the
        # judge's no. A low lexical score alone is not: answers paraphrase, and HaluEval's fitted
        # weights read an answer with a fifth of its words reworded as unsupported. Its score is
        # recorded, and ``review_below`` can send it to a person.
        if all(s.supported or not (s.missing_facts or s.undrawn or s.judge is not None) for s in report.sentences):
            account.claims_shown += 1
            if score < self._policy.review_below:
                account.review.append("low_support")
            account.sentences.append(SentenceScore(shown, round(score, 4), report.supported, "shown"))
            return shown
        return self._unsupported(shown, score, report)

    def _unsupported(self, text: str, score: float, report: Groundedness) -> str | None:
        account = self._account
        action: Literal["remove", "mark", "review"] = self._policy.unsupported
        if action == "remove":
            # Neither the sentence nor its facts go anywhere the employee or the logs see: it was withheld.
            detail = f"a sentence was removed ({score:.2f}; {_why(report)})"
            account.findings.append(Finding("groundedness", "unsupported", detail, flag=False))
            account.claims_removed += 1
            account.sentences.append(SentenceScore("", round(score, 4), False, "removed"))
            return None
        # The sentence as shown (redacted), and a count of its facts: the facts were read from the text
        # before redaction, so they may hold the digits of what was redacted.
        detail = f"unsupported ({score:.2f}; {_why(report)}): {text[:160]}"
        account.findings.append(Finding("groundedness", "unsupported", detail))
        account.claims_shown += 1
        if action == "review":
            account.review.append("unsupported")
            account.sentences.append(SentenceScore(text, round(score, 4), False, "shown"))
            return text
        account.sentences.append(SentenceScore(text, round(score, 4), False, "marked"))
        return _marked(text)


def _why(report: Groundedness) -> str:
    """Why the sentence is unsupported, counted, never quoted (the facts may hold what was redacted)."""
    facts = sum(len(s.missing_facts) for s in report.unsupported)
    why = f"{facts} number, date or name in none of its passages"
    if any(s.undrawn for s in report.unsupported):
        why += "; less than half its words from the passages it cites"
    return why


def _shingles(text: str, *, exclude: str = "") -> frozenset[tuple[str, ...]]:
    """Runs of ``ECHO_WORDS`` words (lower case), less those that ``exclude`` also has."""
    words = re.findall(r"\w+", text.lower())
    runs = frozenset(tuple(words[i : i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1))
    return runs - _shingles(exclude) if exclude else runs


def _marked(text: str) -> str:
    """The mark goes before the sentence's closing citations and full stop."""
    match = re.search(r"(\s*(?:\[\d+\])*\s*[.!?]*\s*(?:\[\d+\])*)$", text)
    cut = match.start() if match else len(text)
    return text[:cut] + MARK + text[cut:]
