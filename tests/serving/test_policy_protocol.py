"""The policy's wire models follow ``TenantPolicy``: a field added to the policy fails here, not as a
500 on ``GET /v1/policy`` or a 400 on ``PUT``."""

from __future__ import annotations

import dataclasses

import pytest

from guardrails.policy import DeniedTopic, TenantPolicy
from serving.protocol_policy import DeniedTopicIn, PolicyOut, PolicyRequest, WireDeniedTopic, WirePolicy

pytestmark = pytest.mark.unit


def test_the_wire_models_have_the_policys_fields() -> None:
    fields = set(TenantPolicy().to_json())
    assert set(WirePolicy.model_fields) == fields
    assert set(PolicyRequest.model_fields) == fields
    topic = {f.name for f in dataclasses.fields(DeniedTopic)}
    assert set(WireDeniedTopic.model_fields) == set(DeniedTopicIn.model_fields) == topic


def test_an_empty_request_is_the_default_policy_and_a_full_one_round_trips() -> None:
    assert PolicyRequest().model_dump(mode="json") == TenantPolicy().to_json()
    policy = TenantPolicy(
        tenant="acme",
        version=4,
        secrets="redact",
        labels={"EMAIL_ADDRESS": "allow"},
        review_below=0.25,
        denied_topics=(DeniedTopic("salaries", ("salary",), ("What does Ana earn?",), "review"),),
        max_answer_chars=500,
    )
    body = PolicyRequest.model_validate(policy.to_json()).model_dump(mode="json")
    assert TenantPolicy.from_json(body, tenant="acme", version=4) == policy
    out = PolicyOut.of(policy).model_dump(mode="json")
    assert (out["tenant"], out["version"], out["policy"]) == ("acme", 4, policy.to_json())
