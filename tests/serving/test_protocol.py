"""The wire requests: OpenAI's chat shapes accepted and mapped to domain messages, retrieval filters."""

from __future__ import annotations

import uuid

import pytest

from answer.types import Message
from serving.protocol import ChatCompletionRequest, RetrieveRequest
from sourcebook.errors import ErrorCode, SourcebookError

pytestmark = pytest.mark.unit


def test_chat_request_accepts_openai_shapes_and_maps_roles() -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "sourcebook",
            "messages": [
                {"role": "developer", "content": "be nice"},
                {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}]},
            ],
            "stream": True,
            "top_p": 0.9,
            "max_completion_tokens": 50,
        }
    )
    assert body.domain_messages() == (Message("system", "be nice"), Message("user", "part one\ntwo"))
    assert body.max_completion_tokens == 50


@pytest.mark.parametrize("role", ["tool", "function", "robot"])
def test_chat_request_refuses_other_roles(role: str) -> None:
    body = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": role, "content": "x"}]})
    with pytest.raises(SourcebookError) as caught:
        body.domain_messages()
    assert caught.value.code is ErrorCode.INVALID_REQUEST


def test_retrieve_request_builds_filters_only_when_asked() -> None:
    assert RetrieveRequest(query="q").filters() is None
    doc = uuid.uuid4()
    filters = RetrieveRequest(query="q", document_ids=[doc]).filters()
    assert filters is not None
    assert filters.document_ids == (doc,)
