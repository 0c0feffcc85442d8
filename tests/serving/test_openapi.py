"""The API's OpenAPI document names a response schema for every success, and the streamed chunks
carry only the keys each one is meant to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from answer.types import AnswerRecord, Citation, Finding, Source, Verdict
from serving.app import create_app
from serving.protocol import ChunkDelta, chunk, completion, final_chunk
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


def _document(tmp_path: Path) -> dict[str, Any]:
    return create_app(make_settings(tmp_path)).openapi()


def _resolves(document: dict[str, Any], ref: str) -> bool:
    prefix = "#/components/schemas/"
    return ref.startswith(prefix) and ref[len(prefix) :] in document["components"]["schemas"]


def test_every_success_response_names_a_schema(tmp_path: Path) -> None:
    document = _document(tmp_path)
    successes = [
        (f"{method.upper()} {path} {code}", response)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for code, response in operation["responses"].items()
        if code.startswith("2")
    ]
    assert len(successes) >= 14
    for where, response in successes:
        contents = response.get("content", {})
        assert contents, f"{where}: no body described"
        for media, body in contents.items():
            ref = body.get("schema", {}).get("$ref", "")
            assert _resolves(document, ref), f"{where} {media}: {body.get('schema')} names no schema"


def test_the_chat_stream_is_described_by_the_chunk_schema(tmp_path: Path) -> None:
    document = _document(tmp_path)
    content = document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert content["application/json"]["schema"]["$ref"].endswith("/ChatCompletion")
    assert content["text/event-stream"]["schema"]["$ref"].endswith("/ChatCompletionChunk")
    refs = list(_refs(document["components"]["schemas"]["ChatCompletionChunk"]))
    assert any(r.endswith("/ChunkChoice") for r in refs)
    assert all(_resolves(document, r) for r in refs), refs


def _refs(schema: object) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def _record() -> AnswerRecord:
    source = Source(1, 7, (7, 8), uuid.uuid4(), "Travel policy", "file:///travel.md", 2, "Trains are booked.", 0.5)
    return AnswerRecord(
        id=uuid.uuid4(),
        tenant_id="acme",
        api_key_id="k1",
        question="How do I travel?",
        history_hash=None,
        history_turns=0,
        rewrite={"search_text": "travel", "method": "first-turn"},
        retrieved=(),
        citations=(Citation(1, source, "Trains are booked."),),
        text="By train [1].",
        verdict=Verdict("answer", False, (Finding("citations", "dropped_markers", "removed [9]", flag=False),)),
        model="small",
        endpoint=None,
        prompt_version="answer/v2#abc",
        prompt_tokens=10,
        completion_tokens=4,
        timings_ms={"total": 12.5},
    )


def test_chunks_carry_only_their_own_keys() -> None:
    record = _record()
    opening = chunk(record.id, assistant="sb", created=1, delta=ChunkDelta(role="assistant", content=""))
    piece = chunk(record.id, assistant="sb", created=1, delta=ChunkDelta(content="By train"))
    cited = chunk(record.id, assistant="sb", created=1, delta=ChunkDelta(content=" [1]."), citations=record.citations)
    last = final_chunk(record, assistant="sb", created=1)
    dump = [c.model_dump(mode="json", exclude_unset=True) for c in (opening, piece, cited, last)]
    assert dump[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    assert set(dump[1]) == {"id", "object", "created", "model", "choices"}
    assert dump[1]["choices"][0]["delta"] == {"content": "By train"}
    assert dump[2]["citations"][0]["chunk_ids"] == [7, 8]
    assert dump[2]["citations"][0]["document_id"] == str(record.citations[0].source.document_id)
    assert dump[3]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert dump[3]["usage"] == {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
    assert dump[3]["sourcebook"]["verdict"]["findings"] == [
        {"guard": "citations", "code": "dropped_markers", "message": "removed [9]"}
    ]


def test_a_completion_is_the_openai_shape_with_citations_and_provenance() -> None:
    record = _record()
    body = completion(record, assistant="sb", created=5).model_dump(mode="json")
    assert body["id"] == f"chatcmpl-{record.id.hex}"
    assert body["object"] == "chat.completion"
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "By train [1]."}, "finish_reason": "stop"}
    ]
    assert body["sourcebook"]["answer_id"] == str(record.id)
    assert body["sourcebook"]["rewritten_query"] == "travel"
    assert body["citations"][0]["quote"] == "Trains are booked."
