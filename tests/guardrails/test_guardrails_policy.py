"""A tenant policy read from JSON: every field round-trips, and anything unknown or out of range is refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from guardrails.policy import DeniedTopic, TenantPolicy
from sourcebook.errors import ErrorCode, SourcebookError

pytestmark = pytest.mark.unit


def test_every_field_round_trips_through_json() -> None:
    policy = TenantPolicy(
        tenant="acme",
        version=3,
        secrets="redact",
        pii="block",
        labels={"EMAIL_ADDRESS": "allow"},
        injection_warn="review",
        unsupported="mark",
        review_below=0.4,
        denied_topics=(DeniedTopic("salaries", ("salary", "pay band"), ("What does Ana earn?",), "block"),),
        max_answer_chars=600,
        too_long="review",
        release="whole",
    )
    assert TenantPolicy.from_json(policy.to_json(), tenant="acme", version=3) == policy


def test_fields_left_out_keep_their_defaults() -> None:
    assert TenantPolicy.from_json({}, tenant="acme") == TenantPolicy(tenant="acme")
    assert TenantPolicy.from_json({"pii": "allow"}).pii == "allow"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"secret": "allow"}, "'secret'"),
        ({"pii": "ignore"}, "'pii'"),
        ({"labels": {"EMAIL_ADDRESS": "hide"}}, "'labels.EMAIL_ADDRESS'"),
        ({"labels": ["EMAIL_ADDRESS"]}, "'labels'"),
        ({"review_below": 1.5}, "'review_below'"),
        ({"review_below": float("nan")}, "'review_below'"),
        ({"review_below": True}, "'review_below'"),
        ({"max_answer_chars": 5}, "'max_answer_chars'"),
        ({"max_answer_chars": "600"}, "'max_answer_chars'"),
        ({"denied_topics": {"name": "x"}}, "'denied_topics'"),
        ({"denied_topics": [{"name": "pay"}]}, "'denied_topics[0]'"),
        ({"denied_topics": [{"name": "pay", "keywords": ["salary"], "colour": 1}]}, "'denied_topics[0].colour'"),
        ({"denied_topics": [{"name": "pay", "keywords": [""]}]}, "'denied_topics[0].keywords'"),
        ({"denied_topics": [{"name": "pay", "keywords": ["x"], "action": "hide"}]}, "'denied_topics[0].action'"),
        ({"unsupported": "delete"}, "'unsupported'"),
        ({"release": "tokens"}, "'release'"),
    ],
)
def test_an_unknown_or_out_of_range_field_is_refused_by_name(body: dict[str, Any], named: str) -> None:
    with pytest.raises(SourcebookError) as caught:
        TenantPolicy.from_json(body)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert named in caught.value.message
