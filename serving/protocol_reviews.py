"""The wire models of the human review queue (``/v1/reviews``): a reviewer's decision, a review with
the answer it is about, and a page of them (also what ``sourcebook reviews --json`` prints)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from answer.reviews import Decision, DecisionKind, Review, ReviewStatus
from serving.protocol import Body, Text, WireCitation, WireFinding, WireVerdict


class ReviewDecisionRequest(BaseModel):
    """``POST /v1/reviews/{id}``: ``correct`` needs ``corrected_answer`` and may name supporting chunks
    among those the answer retrieved; ``approve`` and ``reject`` take neither."""

    model_config = ConfigDict(extra="forbid")

    decision: DecisionKind
    corrected_answer: Annotated[Text, Field(min_length=1, max_length=16000)] | None = None
    supporting_chunk_ids: Annotated[list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(max_length=100)] = []
    note: Annotated[Text, Field(max_length=4000)] | None = None

    def to_decision(self) -> Decision:
        return Decision(self.decision, self.corrected_answer, tuple(self.supporting_chunk_ids), self.note)


class WireReview(Body):
    """A review with its answer as stored: the question (it may be redacted), text, verdict, citations,
    and the chunks it retrieved (what a correction's supporting chunks are chosen from)."""

    object: Literal["review"] = "review"
    id: int
    tenant_id: str
    answer_id: uuid.UUID
    reason: str
    status: ReviewStatus
    corrected_answer: str | None
    supporting_chunk_ids: list[int]
    reviewer_key_id: str | None
    note: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    question: str
    answer: str
    verdict: WireVerdict
    citations: list[WireCitation]
    retrieved_chunk_ids: list[int]
    answered_at: dt.datetime

    @classmethod
    def of(cls, review: Review) -> WireReview:
        verdict = WireVerdict(
            outcome=review.verdict.outcome,
            flagged=review.verdict.flagged,
            findings=[WireFinding(guard=f.guard, code=f.code, message=f.message) for f in review.verdict.findings],
        )
        stored = {f.name: getattr(review, f.name) for f in dataclasses.fields(review)}
        return cls.model_validate(
            stored | {"verdict": verdict, "citations": [WireCitation.of(c) for c in review.citations]}
        )


class ReviewPage(Body):
    object: Literal["list"] = "list"
    data: list[WireReview]
    next_after: int | None
