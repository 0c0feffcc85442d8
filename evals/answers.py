"""Answers of a golden set scored without a judge: answered correctly, false abstention, from memory,
right abstention, time per answer.

Each question goes through the answer service as an employee's would (rewrite, hybrid retrieval,
rerank, prompt, generation, guards; the answer is stored with its provenance, route ``eval.answers``).

- **Correct** needs a cited passage that holds the answer, not just the right words:
  - a short reference (a value): the answer contains it (SQuAD normalisation, thousands separators
    dropped) and a cited passage contains it too;
  - a long reference (an FAQ section): a cited passage holds the section (content words shared with
    at least 60% of the smaller of the two) and at least half of the answer's content words are in it.
  - a yes/no reference (HotpotQA's comparison questions): no passage holds the word, so the answer's
    first word is the reference and it cites a passage; its citations are not scored by text.
- **From memory:** the answer gives the value the world knows (``memory_answer``) and not the corpus's.
- **False abstention:** the abstention to an answerable question. Reported also for the questions whose
  reference a shown passage held: those the model could have answered.
- **Right abstention:** the abstention where the set says the corpus doesn't answer (``must_abstain``).

An extractive answer (no model server answered) is never correct: the report counts them.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

import anyio

from answer.pipeline import AnswerService
from answer.types import AnswerRequest, Finished, Message, Source, Started
from answer.verdict import is_abstention
from evals.goldens import GoldenItem
from evals.text import contains, holds, normalize, support, token_f1
from sourcebook.errors import SourcebookError

Result = Literal["correct", "wrong", "false_abstention", "from_memory", "right_abstention", "answered", "error"]
ROUTE = "eval.answers"
SUPPORT_SHARE = 0.5


def _yes_no(item: GoldenItem) -> str | None:
    """ "yes" or "no" where that is the item's reference answer."""
    reference = normalize(item.reference_answer or "")
    return reference if reference in ("yes", "no") else None


def _holds_reference(item: GoldenItem, passage: str) -> bool:
    if item.reference_answer is not None:
        return contains(passage, item.reference_answer)
    return any(holds(passage, context) for context in item.reference_contexts)


@dataclass(frozen=True, slots=True)
class Scored:
    id: str
    result: Result
    abstained: bool
    shown_holds: bool  # a passage shown to the model held the reference
    cited_holds: bool
    answer: str
    cited: tuple[int, ...]
    outcome: str  # the verdict's: answer, abstain, extractive, incomplete
    model: str
    ms: float
    first_token_ms: float | None
    tags: tuple[str, ...] = ()
    detail: str = ""
    question: str = ""
    flagged: bool = False  # the guards' verdict flagged the answer
    cited_chunk_ids: tuple[int, ...] = ()
    answer_id: uuid.UUID | None = None
    contexts: tuple[str, ...] = ()  # the passages shown to the model, for a judge's metrics
    judge_failures: dict[str, str] = field(default_factory=dict)  # metric -> why the judge left no score
    # the judge-free metrics of this item (``item_scores``); None where a metric doesn't apply
    scores: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["answer_id"] = None if self.answer_id is None else str(self.answer_id)
        return row

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scored:
        values = dict(data)
        for name in ("cited", "tags", "cited_chunk_ids", "contexts"):
            values[name] = tuple(values.get(name, ()))
        values["answer_id"] = None if values.get("answer_id") is None else uuid.UUID(values["answer_id"])
        return cls(**values)


def score(
    item: GoldenItem, text: str, shown: Sequence[str], cited: Sequence[str], *, outcome: str = "answer"
) -> tuple[Result, bool, bool, bool]:
    """(result, abstained, shown_holds, cited_holds) of one answer, from the passages shown and cited."""
    abstained = is_abstention(text)
    shown_holds = any(_holds_reference(item, p) for p in shown)
    cited_holds = any(_holds_reference(item, p) for p in cited)
    if item.must_abstain:
        return ("right_abstention" if abstained else "answered"), abstained, shown_holds, cited_holds
    if outcome == "extractive":  # quoted passages, not the model's answer: nothing to credit it with
        return "wrong", abstained, shown_holds, cited_holds
    if abstained:
        return "false_abstention", abstained, shown_holds, cited_holds
    if (yes_no := _yes_no(item)) is not None:
        said = normalize(text).split()[:1]
        return ("correct" if said == [yes_no] and cited else "wrong"), abstained, shown_holds, cited_holds
    if item.reference_answer is not None:
        if contains(text, item.reference_answer) and cited_holds:
            return "correct", abstained, shown_holds, cited_holds
        if item.memory_answer is not None and contains(text, item.memory_answer):
            return "from_memory", abstained, shown_holds, cited_holds
        return "wrong", abstained, shown_holds, cited_holds
    right = cited_holds and support(text, item.reference_contexts) >= SUPPORT_SHARE
    return ("correct" if right else "wrong"), abstained, shown_holds, cited_holds


async def answer_items(
    service: AnswerService,
    items: Sequence[GoldenItem],
    *,
    tenant: str,
    groups: tuple[str, ...],
    concurrency: int = 1,
    temperature: float | None = None,
    on_result: Callable[[Scored], None] | None = None,
) -> list[Scored]:
    """Every item through the answer service, ``concurrency`` at a time, in the items' order."""
    results: dict[int, Scored] = {}
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(n: int, item: GoldenItem) -> None:
        async with limiter:
            results[n] = await _answer_one(service, item, tenant=tenant, groups=groups, temperature=temperature)
        if on_result is not None:
            on_result(results[n])

    async with anyio.create_task_group() as group:
        for n, item in enumerate(items):
            group.start_soon(one, n, item)
    return [results[n] for n in range(len(items))]


async def _events(service: AnswerService, request: AnswerRequest) -> AsyncIterator[Started | Finished]:
    async for event in service.run(request):
        if isinstance(event, Started | Finished):
            yield event


async def _answer_one(
    service: AnswerService, item: GoldenItem, *, tenant: str, groups: tuple[str, ...], temperature: float | None
) -> Scored:
    request = AnswerRequest(
        tenant_id=tenant,
        groups=groups,
        api_key_id=None,
        messages=(Message("user", item.question),),
        temperature=temperature,
        route=ROUTE,
    )
    started = time.perf_counter()
    shown: tuple[Source, ...] = ()
    try:
        async for event in _events(service, request):
            if isinstance(event, Started):
                shown = event.sources
            else:
                record = event.record
    except SourcebookError as exc:
        ms = (time.perf_counter() - started) * 1000
        error = Scored(item.id, "error", False, False, False, "", (), "error", "", ms, None, item.tags, exc.message)
        return replace(
            error,
            question=item.question,
            scores=item_scores(item, "", (), result="error", abstained=False, flagged=False),
        )
    sources = list({c.number: c.source for c in record.citations}.values())
    result, abstained, shown_holds, cited_holds = score(
        item, record.text, [s.text for s in shown], [s.text for s in sources], outcome=record.verdict.outcome
    )
    return Scored(
        item.id,
        result,
        abstained,
        shown_holds,
        cited_holds,
        record.text,
        tuple(sorted(s.number for s in sources)),
        record.verdict.outcome,
        record.model,
        record.timings_ms.get("total", (time.perf_counter() - started) * 1000),
        record.timings_ms.get("first_token"),
        item.tags,
        question=item.question,
        flagged=record.verdict.flagged,
        cited_chunk_ids=tuple(sorted({n for s in sources for n in s.chunk_ids})),
        answer_id=record.id,
        contexts=tuple(s.text for s in shown),
        scores=item_scores(
            item, record.text, sources, result=result, abstained=abstained, flagged=record.verdict.flagged
        ),
    )


def _citation_scores(item: GoldenItem, cited: Sequence[Source]) -> tuple[float | None, float | None]:
    """(precision, recall) of the cited passages against the reference contexts: by chunk id when the
    item names chunks, else by text (a passage holds a context, or contains the reference answer)."""
    if item.reference_chunk_ids:
        wanted = set(item.reference_chunk_ids)
        hits = [bool(wanted & set(s.chunk_ids)) for s in cited]
        covered = wanted & {n for s in cited for n in s.chunk_ids}
        return (sum(hits) / len(hits) if hits else None), len(covered) / len(wanted)
    if (not item.reference_contexts and item.reference_answer is None) or _yes_no(item) is not None:
        return None, None
    hits = [_holds_reference(item, s.text) for s in cited]
    if item.reference_contexts:
        found = sum(any(holds(s.text, c) for s in cited) for c in item.reference_contexts)
        recall = found / len(item.reference_contexts)
    else:
        recall = float(any(hits))
    return (sum(hits) / len(hits) if hits else None), recall


def item_scores(
    item: GoldenItem, text: str, cited: Sequence[Source], *, result: Result, abstained: bool, flagged: bool
) -> dict[str, float | None]:
    """The judge-free metrics of one answer; None where a metric doesn't apply to the item (a rate is the
    mean over the items it applies to, so abstention precision is over the abstentions)."""
    answerable = not item.must_abstain
    reference = item.reference_answer if answerable else None
    precision, recall = _citation_scores(item, cited) if answerable and result != "error" else (None, None)
    return {
        "correct": float(result == "correct") if answerable else None,
        "false_abstention": float(result == "false_abstention") if answerable else None,
        "from_memory": float(result == "from_memory") if item.memory_answer is not None else None,
        "right_abstention": None if answerable else float(result == "right_abstention"),
        "exact_match": None if reference is None else float(normalize(text) == normalize(reference)),
        "token_f1": None if reference is None else token_f1(text, reference),
        "contains_reference": None if reference is None else float(contains(text, reference)),
        "citation_precision": precision,
        "citation_recall": recall,
        "abstention_precision": float(item.must_abstain) if abstained else None,
        "abstention_recall": float(abstained) if item.must_abstain else None,
        "flagged": float(flagged),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summarize(scored: Sequence[Scored]) -> dict[str, Any]:
    """The set's figures: shares of each result, over the items they apply to, and time per answer."""
    answerable = [s for s in scored if s.result not in ("right_abstention", "answered")]
    unanswerable = [s for s in scored if s.result in ("right_abstention", "answered")]
    held = [s for s in answerable if s.shown_holds]
    times = sorted(s.ms for s in scored if s.result != "error")
    counts = {r: sum(s.result == r for s in scored) for r in get_args(Result)}
    models = Counter(s.model for s in scored if s.model)
    return {
        "model": models.most_common(1)[0][0] if models else None,
        "items": len(scored),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "correct": _rate(counts["correct"], len(answerable)),
        "false_abstention": _rate(counts["false_abstention"], len(answerable)),
        "from_memory": _rate(counts["from_memory"], len(answerable)),
        "wrong": _rate(counts["wrong"], len(answerable)),
        "right_abstention": _rate(counts["right_abstention"], len(unanswerable)),
        "shown_holds": _rate(len(held), len(answerable)),
        "correct_when_shown": _rate(sum(s.result == "correct" for s in held), len(held)),
        "false_abstention_when_shown": _rate(sum(s.result == "false_abstention" for s in held), len(held)),
        "errors": counts["error"],
        "extractive": sum(s.outcome == "extractive" for s in scored),
        "answer_ms": {
            "p50": round(statistics.median(times), 1) if times else None,
            "p95": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1) if times else None,
        },
        "counts": counts,
    }
