"""The review queue on a real PostgreSQL: one open review per answer collecting its reasons, decisions
stored once (a second is a conflict), corrections supported only by chunks the answer retrieved, the
tenant and access rules of the readers, and down-votes entering the queue with their feedback."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from answer.feedback import add_feedback, list_feedback
from answer.reviews import Decision, ReviewStatus, decide_review, enqueue_review, get_review, list_reviews
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError
from tests.review_helpers import add_answer, add_document

pytestmark = pytest.mark.db


@pytest.fixture
def conn(database_url: str) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def _code(exc: pytest.ExceptionInfo[SourcebookError]) -> ErrorCode:
    return exc.value.code


def test_a_second_reason_joins_the_open_review_once(conn: Conn) -> None:
    answer = add_answer(conn, "acme", [(add_document(conn, "acme", ["hr"]), (11, 12))], question="Ana's salary?")
    first = enqueue_review(conn, tenant_id="acme", answer_id=answer.id, reason="policy:denied_topic")
    assert enqueue_review(conn, tenant_id="acme", answer_id=answer.id, reason="support:0.31") == first
    assert enqueue_review(conn, tenant_id="acme", answer_id=answer.id, reason=" policy:denied_topic ") == first
    review = get_review(conn, first, tenant_id="acme", groups=None)
    assert review.reason == "policy:denied_topic; support:0.31"
    assert (review.status, review.decided_at, review.reviewer_key_id) == ("pending", None, None)
    # What the reviewer sees of the answer, as it was stored.
    assert (review.question, review.answer, review.answer_id) == ("Ana's salary?", "By train [1].", answer.id)
    assert review.verdict == answer.verdict
    assert [(c.number, c.source.chunk_ids, c.quote) for c in review.citations] == [(1, (11, 12), "Trains are booked.")]
    assert review.retrieved_chunk_ids == (11, 12)


def test_only_an_answer_of_the_tenant_can_be_queued_and_only_with_a_reason(conn: Conn) -> None:
    answer = add_answer(conn, "acme", [])
    with pytest.raises(SourcebookError) as foreign:
        enqueue_review(conn, tenant_id="globex", answer_id=answer.id, reason="x")
    with pytest.raises(SourcebookError) as unknown:
        enqueue_review(conn, tenant_id="acme", answer_id=uuid.uuid4(), reason="x")
    with pytest.raises(SourcebookError) as blank:
        enqueue_review(conn, tenant_id="acme", answer_id=answer.id, reason="  ")
    assert (_code(foreign), _code(unknown), _code(blank)) == (
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_FOUND,
        ErrorCode.INVALID_REQUEST,
    )


def test_a_decision_is_stored_once_and_a_new_reason_opens_a_new_review(conn: Conn) -> None:
    answer = add_answer(conn, "acme", [])
    review_id = enqueue_review(conn, tenant_id="acme", answer_id=answer.id, reason="feedback:down")
    decided = decide_review(
        conn,
        review_id,
        tenant_id="acme",
        groups=None,
        reviewer_key_id="0123456789ab",
        decision=Decision("approve", note="  fine as it is "),
    )
    assert (decided.status, decided.reviewer_key_id, decided.note) == ("approved", "0123456789ab", "fine as it is")
    assert decided.decided_at is not None
    assert get_review(conn, review_id, tenant_id="acme", groups=None) == decided
    with pytest.raises(SourcebookError) as again:
        decide_review(conn, review_id, tenant_id="acme", groups=None, reviewer_key_id=None, decision=Decision("reject"))
    assert _code(again) is ErrorCode.CONFLICT
    reopened = enqueue_review(conn, tenant_id="acme", answer_id=answer.id, reason="feedback:down")
    assert reopened != review_id
    assert get_review(conn, reopened, tenant_id="acme", groups=None).status == "pending"


def test_a_correction_needs_its_text_and_only_chunks_the_answer_retrieved(conn: Conn) -> None:
    document = add_document(conn, "acme", ["hr"])
    answer = add_answer(conn, "acme", [(document, (21, 22)), (document, (23,))])
    review_id = enqueue_review(conn, tenant_id="acme", answer_id=answer.id, reason="support:0.1")

    def decide(decision: Decision) -> ErrorCode:
        with pytest.raises(SourcebookError) as refused:
            decide_review(conn, review_id, tenant_id="acme", groups=None, reviewer_key_id=None, decision=decision)
        return refused.value.code

    assert decide(Decision("correct", corrected_answer="  ")) is ErrorCode.INVALID_REQUEST
    assert decide(Decision("approve", corrected_answer="By plane.")) is ErrorCode.INVALID_REQUEST
    assert decide(Decision("reject", supporting_chunk_ids=(21,))) is ErrorCode.INVALID_REQUEST
    with pytest.raises(SourcebookError) as foreign:
        decide_review(
            conn,
            review_id,
            tenant_id="acme",
            groups=None,
            reviewer_key_id=None,
            decision=Decision("correct", corrected_answer="By plane.", supporting_chunk_ids=(23, 99, 7)),
        )
    assert foreign.value.code is ErrorCode.INVALID_REQUEST
    assert "99, 7" in foreign.value.message
    corrected = decide_review(
        conn,
        review_id,
        tenant_id="acme",
        groups=None,
        reviewer_key_id=None,
        decision=Decision("correct", corrected_answer="By plane [2].", supporting_chunk_ids=(23, 21, 23)),
    )
    assert (corrected.status, corrected.corrected_answer, corrected.supporting_chunk_ids) == (
        "corrected",
        "By plane [2].",
        (23, 21),
    )
    row = conn.execute(
        "SELECT status, corrected_answer, supporting_chunk_ids FROM reviews WHERE id = %s", (review_id,)
    ).fetchone()
    assert row == ("corrected", "By plane [2].", [23, 21])


def test_readers_see_their_tenant_and_answers_whose_every_document_they_may_read(conn: Conn) -> None:
    hr, public = add_document(conn, "initech", ["hr"]), add_document(conn, "initech", ["everyone"])
    mixed = add_answer(conn, "initech", [(public, (1,)), (hr, (2,))])
    open_one = add_answer(conn, "initech", [(public, (3,))])
    ids = [enqueue_review(conn, tenant_id="initech", answer_id=a.id, reason="r") for a in (mixed, open_one)]
    elsewhere = add_answer(conn, "umbrella", [])
    enqueue_review(conn, tenant_id="umbrella", answer_id=elsewhere.id, reason="r")

    def listed(groups: tuple[str, ...] | None) -> list[int]:
        rows = list_reviews(conn, tenant_id="initech", groups=groups, status=None, after_id=0, limit=100)
        return [r.id for r in rows]

    assert listed(None) == ids
    assert listed(("everyone", "hr")) == ids
    assert listed(("everyone",)) == ids[1:]
    assert listed(("finance",)) == []
    with pytest.raises(SourcebookError) as hidden:
        get_review(conn, ids[0], tenant_id="initech", groups=("everyone",))
    assert _code(hidden) is ErrorCode.NOT_FOUND
    with pytest.raises(SourcebookError) as undecidable:
        decide_review(
            conn, ids[0], tenant_id="initech", groups=("everyone",), reviewer_key_id=None, decision=Decision("reject")
        )
    assert _code(undecidable) is ErrorCode.NOT_FOUND
    with pytest.raises(SourcebookError) as other_tenant:
        get_review(conn, ids[0], tenant_id="umbrella", groups=None)
    assert _code(other_tenant) is ErrorCode.NOT_FOUND
    # A document deleted since hides the answer that quoted it, as access taken away does.
    conn.execute("DELETE FROM documents WHERE id = %s", (public,))
    assert listed(("everyone", "hr")) == []
    assert listed(None) == ids


def test_the_list_filters_by_status_and_pages_on(conn: Conn) -> None:
    answers = [add_answer(conn, "pager", []) for _ in range(3)]
    ids = [enqueue_review(conn, tenant_id="pager", answer_id=a.id, reason="r") for a in answers]
    decide_review(conn, ids[1], tenant_id="pager", groups=None, reviewer_key_id=None, decision=Decision("reject"))

    def page(status: ReviewStatus | None, after: int, limit: int) -> list[int]:
        rows = list_reviews(conn, tenant_id="pager", groups=None, status=status, after_id=after, limit=limit)
        return [r.id for r in rows]

    assert page(None, 0, 2) == ids[:2]
    assert page(None, ids[1], 2) == ids[2:]
    assert page("pending", 0, 10) == [ids[0], ids[2]]
    assert page("rejected", 0, 10) == [ids[1]]
    everyone = list_reviews(conn, tenant_id=None, groups=None, status=None, after_id=0, limit=1000)
    assert {r.tenant_id for r in everyone} >= {"pager"}


def test_a_down_vote_queues_its_answer_and_an_up_vote_does_not(conn: Conn) -> None:
    liked, disliked = add_answer(conn, "votes", []), add_answer(conn, "votes", [])
    for answer, rating in ((liked, 1), (disliked, -1), (disliked, -1)):
        add_feedback(conn, tenant_id="votes", api_key_id=None, answer_id=answer.id, rating=rating, comment=None,
                     correction=None)  # fmt: skip
    rows = list_reviews(conn, tenant_id="votes", groups=None, status=None, after_id=0, limit=10)
    assert [(r.answer_id, r.reason) for r in rows] == [(disliked.id, "feedback:down")]


def test_feedback_and_its_review_are_one_transaction(database_url: str, conn: Conn) -> None:
    answer = add_answer(conn, "atomic", [])
    with psycopg.connect(database_url) as own:
        add_feedback(own, tenant_id="atomic", api_key_id=None, answer_id=answer.id, rating=-1, comment=None,
                     correction=None)  # fmt: skip
        own.rollback()
    assert conn.execute("SELECT count(*) FROM feedback WHERE answer_id = %s", (answer.id,)).fetchone() == (0,)
    assert list_reviews(conn, tenant_id="atomic", groups=None, status=None, after_id=0, limit=10) == []


def test_two_enqueues_at_once_make_one_review(database_url: str, conn: Conn) -> None:
    answer = add_answer(conn, "twice", [])
    got: list[int] = []
    with psycopg.connect(database_url) as first, first.transaction():
        got.append(enqueue_review(first, tenant_id="twice", answer_id=answer.id, reason="policy:flagged"))

        def second() -> None:
            with psycopg.connect(database_url) as other:
                got.append(enqueue_review(other, tenant_id="twice", answer_id=answer.id, reason="feedback:down"))

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the second enqueue did not wait for the first"
    thread.join(timeout=30)
    assert got[0] == got[1]
    review = get_review(conn, got[0], tenant_id="twice", groups=None)
    assert review.reason == "policy:flagged; feedback:down"


def test_feedback_is_listed_under_the_same_access_rule(conn: Conn) -> None:
    hr = add_document(conn, "rules", ["hr"])
    answer = add_answer(conn, "rules", [(hr, (8,))])
    add_feedback(conn, tenant_id="rules", api_key_id=None, answer_id=answer.id, rating=1, comment=None, correction=None)

    def listed(groups: tuple[str, ...] | None) -> list[uuid.UUID]:
        rows = list_feedback(conn, tenant_id="rules", groups=groups, rating=None, since=None, after_id=0, limit=10)
        return [row["answer_id"] for row in rows]

    assert (listed(None), listed(("hr",)), listed(("everyone",))) == ([answer.id], [answer.id], [])
