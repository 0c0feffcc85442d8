"""The answer cache's key: everything that changes the answer changes the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from answer.cache import cache_key
from answer.types import Message
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


def test_cache_keys_change_with_everything_that_changes_the_answer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    base = {
        "tenant_id": "acme",
        "groups": ("staff", "everyone"),
        "question": "What is the VPN?",
        "history": (Message("user", "hi"),),
        "version": 3,
        "prompt_versions": ("answer/v2#1", "rewrite/v1#2"),
        "max_tokens": None,
        "temperature": None,
    }
    key = cache_key(settings, **base)  # type: ignore[arg-type]
    assert key == cache_key(settings, **(base | {"groups": ("everyone", "staff", "staff")}))  # type: ignore[arg-type]
    for change in (
        {"tenant_id": "globex"},
        {"groups": ("everyone",)},
        {"question": "What is the VPN"},
        {"history": ()},
        {"version": 4},
        {"prompt_versions": ("answer/v1#1", "rewrite/v1#2")},
        {"max_tokens": 10},
        {"temperature": 0.7},
    ):
        assert cache_key(settings, **(base | change)) != key, change  # type: ignore[arg-type]
    other_model = make_settings(tmp_path, llm_model="qwen")
    assert cache_key(other_model, **base) != key  # type: ignore[arg-type]
