"""``sourcebook reviews``: the human review queue, as the operator (every tenant, no ACL filter)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from sourcebook.cli import console, split_csv, state, table
from sourcebook.db import open_database
from sourcebook.errors import ErrorCode, SourcebookError

if TYPE_CHECKING:
    from answer.reviews import Decision, DecisionKind, Review

app = typer.Typer(help="Answers held for a person: list, show and decide them.", no_args_is_help=True)

# The queue's states (``answer.reviews.ReviewStatus``), spelt here so that `--help` needn't import the answer stage.
Status = Literal["pending", "approved", "corrected", "rejected"]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape).")]


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_json(reviews: list[Review]) -> None:
    from serving.protocol_reviews import ReviewPage, WireReview

    console.print_json(ReviewPage(data=[WireReview.of(r) for r in reviews], next_after=None).model_dump_json())


@app.command("list")
def list_(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="One tenant (default: all).")] = None,
    status: Annotated[Status | None, typer.Option(help="Only reviews in this state.")] = None,
    after: Annotated[int, typer.Option(min=0, help="Reviews after this id.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    as_json: AsJson = False,
) -> None:
    """List reviews, oldest first."""
    from answer.reviews import list_reviews

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        rows = list_reviews(conn, tenant_id=tenant, groups=None, status=status, after_id=after, limit=limit)
    if as_json:
        _print_json(rows)
        return
    out = table("id", "tenant", "status", "reason", "created", "question", "answer id")
    for r in rows:
        created = r.created_at.strftime("%Y-%m-%d %H:%M")
        out.add_row(str(r.id), r.tenant_id, r.status, r.reason, created, _short(r.question), str(r.answer_id))
    console.print(out)


def _print_review(r: Review) -> None:
    # Every text here was written by a user or a model: escaped, so that it is never read as markup.
    console.print(f"[bold]review {r.id}[/] ({r.status}) · tenant {r.tenant_id} · answer {r.answer_id}", highlight=False)
    console.print(f"reasons: {escape(r.reason)}", highlight=False)
    console.print(f"[bold]question[/]: {escape(r.question)}", highlight=False)
    console.print(f"[bold]answer[/]: {escape(r.answer)}", highlight=False)
    for c in r.citations:
        cited = f"  [{c.number}] {c.source.title} (chunk {c.source.chunk_id}) “{c.quote}”"
        console.print(cited, markup=False, highlight=False)
    findings = "; ".join(f"{f.guard}/{f.code}: {f.message}" for f in r.verdict.findings)
    flagged = ", flagged" if r.verdict.flagged else ""
    console.print(f"verdict: {r.verdict.outcome}{flagged}{' — ' + findings if findings else ''}", markup=False)
    console.print(f"retrieved chunks: {', '.join(map(str, r.retrieved_chunk_ids)) or '-'}", highlight=False)
    if r.decided_at is not None:
        console.print(f"decided {r.decided_at:%Y-%m-%d %H:%M} by {r.reviewer_key_id or '(CLI)'}", highlight=False)
    if r.corrected_answer is not None:
        chunks = ", ".join(map(str, r.supporting_chunk_ids)) or "-"
        text = escape(r.corrected_answer)
        console.print(f"[bold]corrected answer[/]: {text} (supporting chunks: {chunks})", highlight=False)
    if r.note:
        console.print(f"note: {r.note}", markup=False, highlight=False)


@app.command()
def show(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(min=1, help="The review's id.")],
    as_json: AsJson = False,
) -> None:
    """Show a review with its answer: question, text, citations, verdict, and the decision if any."""
    from answer.reviews import get_review

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        review = get_review(conn, review_id, tenant_id=None, groups=None)
    if as_json:
        from serving.protocol_reviews import WireReview

        console.print_json(WireReview.of(review).model_dump_json())
        return
    _print_review(review)


def _decision(approve: bool, correct: str | None, chunks: str, reject: bool, note: str | None) -> Decision:
    from answer.reviews import Decision

    if approve + (correct is not None) + reject != 1:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "give exactly one of --approve, --correct TEXT, --reject")
    try:
        ids = tuple(int(part) for part in split_csv(chunks))
    except ValueError as exc:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"--chunks takes chunk ids, like 12,15: {chunks!r}") from exc
    kind: DecisionKind = "approve" if approve else "reject" if reject else "correct"
    return Decision(kind, correct, ids, note)


@app.command()
def decide(
    ctx: typer.Context,
    review_id: Annotated[int, typer.Argument(min=1, help="The review's id.")],
    approve: Annotated[bool, typer.Option("--approve", help="The answer is right as it is.")] = False,
    correct: Annotated[str | None, typer.Option("--correct", help="The corrected answer.")] = None,
    chunks: Annotated[str, typer.Option(help="With --correct: retrieved chunk ids that support it (1,2).")] = "",
    reject: Annotated[bool, typer.Option("--reject", help="The answer is wrong and has no correction.")] = False,
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
) -> None:
    """Decide a pending review as the operator (no key is recorded); a decided review can't be decided again."""
    from answer.reviews import decide_review

    decision = _decision(approve, correct, chunks, reject, note)
    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        review = decide_review(conn, review_id, tenant_id=None, groups=None, reviewer_key_id=None, decision=decision)
    console.print(f"review {review.id}: {review.status}", highlight=False)
