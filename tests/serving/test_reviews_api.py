"""The policy and review routes over real HTTP against a real PostgreSQL: scopes, tenant isolation,
the access rule of reviews, versioned policies, decisions stored once with the reviewer's key.
Answers to review are stored as the answer stage stores them; no model server is needed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from answer.reviews import enqueue_review
from sourcebook.db import Database
from sourcebook.settings import Settings
from tests.conftest import make_settings
from tests.review_helpers import add_answer, add_document
from tests.serving_helpers import auth, new_key

pytestmark = [pytest.mark.db, pytest.mark.model]


@pytest.fixture(scope="module")
def api_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("reviews"), database_url=database_url, rate_limits_enabled=False)


def key_id(key: str) -> str:
    return key.split("_")[1]


def get(url: str, key: str, **params: Any) -> httpx.Response:
    return httpx.get(url, params=params, headers=auth(key), timeout=30)


def test_the_policy_is_read_by_admins_and_reviewers_and_set_by_admins_as_versions(api: str, database: Database) -> None:
    admin = new_key(database, "acme", groups=(), scopes=("admin",))
    reviewer = new_key(database, "acme", groups=("hr",), scopes=("review",))
    asker = new_key(database, "acme", scopes=("ask",))
    default = get(f"{api}/v1/policy", admin)
    assert default.status_code == 200, default.text
    assert default.json() == {
        "object": "policy",
        "tenant": "acme",
        "version": 0,
        "policy": {
            "secrets": "block",
            "pii": "redact",
            "labels": {},
            "injection_warn": "allow",
            "unsupported": "remove",
            "review_below": 0.0,
            "denied_topics": [],
            "max_answer_chars": None,
            "too_long": "truncate",
            "release": "sentences",
        },
    }
    assert get(f"{api}/v1/policy", asker).status_code == 403
    topic = {"name": "salaries", "keywords": ["salary"], "action": "review"}
    body = {"pii": "block", "review_below": 0.4, "denied_topics": [topic], "labels": {"EMAIL_ADDRESS": "allow"}}
    assert httpx.put(f"{api}/v1/policy", json=body, headers=auth(reviewer), timeout=30).status_code == 403
    saved = httpx.put(f"{api}/v1/policy", json=body, headers=auth(admin), timeout=30)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1
    assert saved.json()["policy"]["denied_topics"] == [topic | {"examples": []}]
    assert saved.json()["policy"]["secrets"] == "block"
    now = get(f"{api}/v1/policy", reviewer).json()
    assert (now["version"], now["policy"]["review_below"], now["policy"]["pii"]) == (1, 0.4, "block")
    assert httpx.put(f"{api}/v1/policy", json={}, headers=auth(admin), timeout=30).json()["version"] == 2
    assert get(f"{api}/v1/policy", reviewer, version=1).json()["policy"]["pii"] == "block"
    assert get(f"{api}/v1/policy", reviewer, version=0).json()["version"] == 0
    assert get(f"{api}/v1/policy", reviewer, version=9).status_code == 404
    versions = get(f"{api}/v1/policy/versions", reviewer).json()
    assert [(v["version"], v["created_by_key"]) for v in versions["data"]] == [(2, key_id(admin)), (1, key_id(admin))]
    assert get(f"{api}/v1/policy/versions", asker).status_code == 403
    # Another tenant's admin sees its own policy: the default.
    other = new_key(database, "globex", groups=(), scopes=("admin",))
    assert get(f"{api}/v1/policy", other).json()["version"] == 0
    assert get(f"{api}/v1/policy/versions", other).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"secrets": "nope"}, "secrets"),
        ({"review_below": 2}, "review_below"),
        ({"review_below": "0.5"}, "review_below"),
        ({"max_answer_chars": 5}, "max_answer_chars"),
        ({"polcy": {}}, "polcy"),
        ({"denied_topics": [{"name": "x"}]}, "denied_topics[0]"),
        ({"denied_topics": [{"name": "x", "keywords": ["a\u0000b"]}]}, "denied_topics.0.keywords.0"),
    ],
)
def test_a_bad_policy_is_refused_naming_its_field_and_nothing_is_stored(
    api: str, database: Database, body: dict[str, Any], named: str
) -> None:
    admin = new_key(database, "strict", groups=(), scopes=("admin",))
    refused = httpx.put(f"{api}/v1/policy", json=body, headers=auth(admin), timeout=30)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"
    assert named in refused.json()["error"]["message"]
    assert get(f"{api}/v1/policy/versions", admin).json()["data"] == []


def _queued(database: Database, tenant: str, groups: tuple[str, ...]) -> tuple[int, uuid.UUID]:
    with database.pool.connection() as conn:
        answer = add_answer(conn, tenant, [(add_document(conn, tenant, groups), (31, 32))], question="Ana's pay?")
        return enqueue_review(conn, tenant_id=tenant, answer_id=answer.id, reason="policy:denied_topic"), answer.id


def test_reviewers_see_their_tenants_reviews_of_answers_they_may_read(api: str, database: Database) -> None:
    review_id, answer_id = _queued(database, "initech", ("hr",))
    hr = new_key(database, "initech", groups=("hr",), scopes=("review",))
    outsider = new_key(database, "initech", groups=("everyone",), scopes=("review",))
    admin = new_key(database, "initech", groups=(), scopes=("admin",))
    asker = new_key(database, "initech", groups=("hr",), scopes=("ask", "eval"))
    foreign = new_key(database, "umbrella", groups=("hr",), scopes=("review", "admin"))

    listed = get(f"{api}/v1/reviews", hr)
    assert listed.status_code == 200, listed.text
    (row,) = listed.json()["data"]
    assert (row["id"], row["answer_id"], row["status"], row["reason"]) == (
        review_id,
        str(answer_id),
        "pending",
        "policy:denied_topic",
    )
    assert (row["question"], row["answer"], row["retrieved_chunk_ids"]) == ("Ana's pay?", "By train [1].", [31, 32])
    assert row["verdict"]["findings"] == [{"guard": "policy", "code": "denied_topic", "message": "salaries"}]
    assert row["citations"][0]["chunk_ids"] == [31, 32]
    assert get(f"{api}/v1/reviews/{review_id}", hr).json() == row
    assert [r["id"] for r in get(f"{api}/v1/reviews", admin).json()["data"]] == [review_id]
    assert get(f"{api}/v1/reviews", outsider).json()["data"] == []
    assert get(f"{api}/v1/reviews/{review_id}", outsider).status_code == 404
    assert get(f"{api}/v1/reviews", foreign).json()["data"] == []
    assert get(f"{api}/v1/reviews/{review_id}", foreign).status_code == 404
    assert get(f"{api}/v1/reviews", asker).status_code == 403
    assert get(f"{api}/v1/reviews/{review_id}", asker).status_code == 403
    decision = {"decision": "approve"}
    assert httpx.post(f"{api}/v1/reviews/{review_id}", json=decision, headers=auth(asker)).status_code == 403
    assert httpx.post(f"{api}/v1/reviews/{review_id}", json=decision, headers=auth(outsider)).status_code == 404
    assert httpx.post(f"{api}/v1/reviews/{review_id}", json=decision, headers=auth(foreign)).status_code == 404
    assert get(f"{api}/v1/reviews/{review_id}", hr).json()["status"] == "pending"


def test_a_decision_is_stored_once_with_the_reviewers_key(api: str, database: Database) -> None:
    review_id, _ = _queued(database, "hooli", ("hr",))
    reviewer = new_key(database, "hooli", groups=("hr",), scopes=("review",))
    url = f"{api}/v1/reviews/{review_id}"

    def decide(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(url, json=body, headers=auth(reviewer), timeout=30)

    assert decide({"decision": "correct"}).status_code == 400
    assert decide({"decision": "approve", "corrected_answer": "By plane."}).status_code == 400
    assert decide({"decision": "maybe"}).status_code == 400
    assert decide({"decision": "correct", "corrected_answer": "x", "supporting_chunk_ids": [0]}).status_code == 400
    foreign_chunk = decide({"decision": "correct", "corrected_answer": "By plane.", "supporting_chunk_ids": [31, 77]})
    assert foreign_chunk.status_code == 400
    assert "77" in foreign_chunk.json()["error"]["message"]
    done = decide(
        {"decision": "correct", "corrected_answer": "By plane [1].", "supporting_chunk_ids": [32], "note": "checked"}
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["corrected_answer"], body["supporting_chunk_ids"]) == (
        "corrected",
        "By plane [1].",
        [32],
    )
    assert (body["reviewer_key_id"], body["note"]) == (key_id(reviewer), "checked")
    assert body["decided_at"] is not None
    again = decide({"decision": "reject"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert get(url, reviewer).json() == body
    assert get(f"{api}/v1/reviews/999999999", reviewer).status_code == 404
    assert get(f"{api}/v1/reviews/{2**63}", reviewer).status_code == 400


def test_the_queue_filters_by_status_and_pages_on(api: str, database: Database) -> None:
    ids = [_queued(database, "pages", ("hr",))[0] for _ in range(3)]
    reviewer = new_key(database, "pages", groups=("hr",), scopes=("review",))
    reject = {"decision": "reject", "note": "wrong document"}
    assert httpx.post(f"{api}/v1/reviews/{ids[0]}", json=reject, headers=auth(reviewer)).status_code == 200
    first = get(f"{api}/v1/reviews", reviewer, status="pending", limit=1).json()
    assert ([r["id"] for r in first["data"]], first["next_after"]) == ([ids[1]], ids[1])
    rest = get(f"{api}/v1/reviews", reviewer, status="pending", after=first["next_after"], limit=1).json()
    assert [r["id"] for r in rest["data"]] == [ids[2]]
    assert [r["id"] for r in get(f"{api}/v1/reviews", reviewer, status="rejected").json()["data"]] == [ids[0]]
    assert get(f"{api}/v1/reviews", reviewer, status="lost").status_code == 400
    assert get(f"{api}/v1/reviews", reviewer, limit=0).status_code == 400


def test_a_down_vote_through_the_api_puts_the_answer_in_the_queue(api: str, database: Database) -> None:
    with database.pool.connection() as conn:
        answer = add_answer(conn, "voters", [(add_document(conn, "voters", ("everyone",)), (5,))])
    asker = new_key(database, "voters", scopes=("ask",))
    reviewer = new_key(database, "voters", scopes=("review",))
    vote = {"answer_id": str(answer.id), "rating": "down", "comment": "wrong"}
    assert httpx.post(f"{api}/v1/feedback", json=vote, headers=auth(asker), timeout=30).status_code == 201
    (row,) = get(f"{api}/v1/reviews", reviewer).json()["data"]
    assert (row["answer_id"], row["reason"]) == (str(answer.id), "feedback:down")
