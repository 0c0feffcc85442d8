"""The guards around an answer, as the answer stage's ``Guardrails``: the question is screened before
retrieval and the model, and each answer gets a sentence gate (``guardrails.gate``) that lets it
out sentence by sentence, each sentence only after it passed every check.

Each answer reads the tenant's policy (``guardrails.policy``) once for the question and once for its
gate, and records the version in the verdict.

The question: normalised; injection rules and the classifier; secrets and personal data (redacted
or blocked as the policy says, in the earlier turns too); denied topics (keywords, or similarity to
the policy's example questions). A question the injection checks warn about is answered, but held
whole until it is checked (``hold``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from answer.types import Finding, Message, Screened, ScreenOutcome, Source
from guardrails.gate import AnswerGate, as_finding
from guardrails.groundedness import SentenceEncoder, Stage1
from guardrails.injection import Scorer
from guardrails.judge import Judge
from guardrails.normalize import normalise
from guardrails.pipeline import check_question
from guardrails.policy import DeniedTopic, TenantPolicy, decide
from guardrails.sensitive import SensitiveScanner
from guardrails.types import Passage

# Cosine of MiniLM embeddings above which a question is taken to ask what a denied topic's example
# asks; paraphrases of a question score 0.75-0.9 with this model, unrelated questions on the same
# subject 0.3-0.6.
TOPIC_SIMILARITY = 0.7
PolicySource = Callable[[str], TenantPolicy]


class AnswerGuardrails:
    """The real ``Guardrails``: built once (the scanner and the classifier are warmed up by the caller)."""

    def __init__(
        self,
        *,
        policy: PolicySource,
        scanner: SensitiveScanner,
        stage1: Stage1,
        scorer: Scorer | None = None,
        encoder: SentenceEncoder | None = None,
        judge: Judge | None = None,
    ) -> None:
        self._policy = policy
        self._scanner = scanner
        self._stage1 = stage1
        self._scorer = scorer
        self._encoder = encoder
        self._judge = judge
        self._examples: dict[tuple[str, ...], np.ndarray] = {}

    def screen(self, tenant_id: str, question: str, history: Sequence[Message]) -> Screened:
        policy = self._policy(tenant_id)
        checked = check_question(question, policy=policy, scanner=self._scanner, scorer=self._scorer)
        findings = [as_finding(f) for f in checked.injection.findings]
        review: list[str] = []
        outcome: ScreenOutcome = "block" if checked.verdict == "block" else "allow"
        if checked.sensitive.action != "allow":
            findings.append(Finding("sensitive", checked.sensitive.action, checked.sensitive.reason or "", flag=True))
        warned = checked.injection.verdict == "warn"
        if warned and policy.injection_warn == "review":
            review.append(f"injection:{checked.injection.reason}")
        topic = self._topic(checked.text, policy)
        if topic is not None:
            findings.append(Finding("policy", "denied_topic", f"the question is about {topic.name!r}"))
            if topic.action == "review":
                review.append(f"topic:{topic.name}")
            elif outcome == "allow":
                outcome = "block" if topic.action == "block" else "abstain"
        return Screened(
            question=checked.text,
            history=tuple(self._redacted(m, policy) for m in history),
            outcome=outcome,
            findings=tuple(findings),
            review=tuple(review),
            hold=warned,
            policy_version=policy.version,
        )

    def _redacted(self, message: Message, policy: TenantPolicy) -> Message:
        """An earlier turn as the later stages may see it: its sensitive data redacted (never blocked:
        the current question decides whether to answer)."""
        text = normalise(message.content).text  # as the question is: a full-width address is still one
        decision = decide(text, self._scanner.scan(text), policy)
        return message if decision.text == message.content else Message(message.role, decision.text)

    def _topic(self, question: str, policy: TenantPolicy) -> DeniedTopic | None:
        for topic in policy.denied_topics:
            if topic.mentioned_in(question):
                return topic
        examples = [t for t in policy.denied_topics if t.examples]
        if not examples or self._encoder is None:
            return None
        asked = self._encoder.embed([question])[0]
        for topic in examples:
            if float(np.max(self._example_vectors(topic.examples) @ asked)) >= TOPIC_SIMILARITY:
                return topic
        return None

    def _example_vectors(self, examples: tuple[str, ...]) -> np.ndarray:
        assert self._encoder is not None
        vectors = self._examples.get(examples)
        if vectors is None:
            vectors = self._encoder.embed(list(examples))
            if len(self._examples) > 256:
                self._examples.clear()
            self._examples[examples] = vectors
        return vectors

    def gate(self, tenant_id: str, screened: Screened, sources: Sequence[Source], *, prompt: str) -> AnswerGate:
        policy = self._policy(tenant_id)
        if policy.release == "whole" and not screened.hold:
            screened = replace(screened, hold=True)
        return AnswerGate(
            policy=policy,
            prompt=prompt,
            screened=screened,
            passages=tuple(Passage(s.number, s.text) for s in sources),
            flagged=frozenset(s.number for s in sources if s.flags),
            scanner=self._scanner,
            stage1=self._stage1,
            judge=self._judge,
        )
