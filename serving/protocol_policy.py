"""The wire models of a tenant's guardrail policy (``/v1/policy``): the request that sets a new version
and the bodies that show one and list them. Kept apart from ``guardrails.policy.TenantPolicy``, which
checks what these only type-check."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

from guardrails.policies import PolicyVersion
from guardrails.policy import LengthAction, Release, TenantPolicy, TopicAction, UnsupportedAction, WarnAction
from guardrails.types import Action
from serving.protocol import Body, Text


class DeniedTopicIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Text
    keywords: list[Text] = []
    examples: list[Text] = []
    action: TopicAction = "abstain"


_DEFAULT_POLICY = TenantPolicy()


class PolicyRequest(BaseModel):
    """A tenant's whole policy (``PUT /v1/policy``): a field left out takes the default, not the
    previous version's value. Types are checked here, ranges and the rest by ``TenantPolicy.from_json``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    secrets: Action = _DEFAULT_POLICY.secrets
    pii: Action = _DEFAULT_POLICY.pii
    labels: dict[Text, Action] = {}
    injection_warn: WarnAction = _DEFAULT_POLICY.injection_warn
    unsupported: UnsupportedAction = _DEFAULT_POLICY.unsupported
    review_below: float = _DEFAULT_POLICY.review_below
    denied_topics: list[DeniedTopicIn] = []
    max_answer_chars: int | None = _DEFAULT_POLICY.max_answer_chars
    too_long: LengthAction = _DEFAULT_POLICY.too_long
    release: Release = _DEFAULT_POLICY.release


class WireDeniedTopic(Body):
    name: str
    keywords: list[str]
    examples: list[str]
    action: TopicAction


class WirePolicy(Body):
    secrets: Action
    pii: Action
    labels: dict[str, Action]
    injection_warn: WarnAction
    unsupported: UnsupportedAction
    review_below: float
    denied_topics: list[WireDeniedTopic]
    max_answer_chars: int | None
    too_long: LengthAction
    release: Release


class PolicyOut(Body):
    """A tenant's policy; version 0 is the built-in default (the tenant never set one)."""

    object: Literal["policy"] = "policy"
    tenant: str
    version: int
    policy: WirePolicy

    @classmethod
    def of(cls, policy: TenantPolicy) -> PolicyOut:
        return cls(tenant=policy.tenant, version=policy.version, policy=WirePolicy.model_validate(policy.to_json()))


class PolicyVersionOut(Body):
    version: int
    created_at: dt.datetime
    created_by_key: str | None

    @classmethod
    def of(cls, stored: PolicyVersion) -> PolicyVersionOut:
        return cls(version=stored.version, created_at=stored.created_at, created_by_key=stored.created_by_key)


class PolicyVersionList(Body):
    object: Literal["list"] = "list"
    tenant: str
    data: list[PolicyVersionOut]
