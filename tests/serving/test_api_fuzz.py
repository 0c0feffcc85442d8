"""API fuzzing: schemathesis generates requests from the app's own OpenAPI document (valid and
invalid ones) for every operation and sends them to the real app on a real port. No request may
cause a 5xx, every error must come in the one envelope, and every JSON success must match its
documented response schema."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.case import Case

from ingest.embed import SentenceTransformerEmbedder
from serving.app import create_app
from sourcebook.db import open_database
from sourcebook.models import resolve_model
from sourcebook.settings import Settings
from sourcebook.telemetry import TraceContext, configure_logging
from tests.conftest import make_settings
from tests.serving_helpers import ingest_samples, new_key, running_api

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 60


class Target(NamedTuple):
    base: str
    key: str  # tenant "fuzz", every scope: the fuzzer may set its policy, add and delete its documents
    quiet_key: str  # tenant "fuzz-quiet", ask only: no generated request can change what it answers


@pytest.fixture(scope="module")
def target(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    # No model server: the chat route answers extractively (the degraded path is fuzzed too).
    api_settings = make_settings(tmp_path_factory.mktemp("fuzz"), database_url=database_url, rate_limits_enabled=False)
    with open_database(api_settings) as db:
        key = new_key(db, "fuzz", scopes=("ask", "ingest", "admin", "eval"))
        quiet_key = new_key(db, "fuzz-quiet", scopes=("ask",))
        embedder = SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")
        for tenant in ("fuzz", "fuzz-quiet"):
            ingest_samples(db, embedder, tenant, ["laptop_request_howto.md"])
    with running_api(api_settings) as (base, _):
        yield Target(base, key, quiet_key)


def _operations() -> dict[str, Any]:
    """The app's operations by "METHOD /path", from its OpenAPI document (no server needed for it)."""
    spec = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    schema = schemathesis.openapi.from_dict(spec)
    found = (result.ok() for result in schema.get_all_operations())
    return {f"{op.method.upper()} {op.path}": op for op in found}


OPERATIONS = _operations()


def test_every_route_is_fuzzed() -> None:
    routes = {"POST /v1/chat/completions", "POST /v1/documents", "GET /v1/usage", "DELETE /v1/documents/{document_id}"}
    assert routes <= OPERATIONS.keys()


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_generated_request_causes_a_server_error_and_errors_use_the_envelope(target: Target, label: str) -> None:
    base, key = target.base, target.key
    calls = 0

    operation = OPERATIONS[label]

    @given(case=st.one_of(operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: Case) -> None:
        nonlocal calls
        response = case.call(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        calls += 1
        assert response.status_code < 500, f"{label} → {response.status_code}: {response.text[:500]}"
        if response.status_code >= 400:
            error = response.json()["error"]
            assert {"message", "type", "code"} <= error.keys(), response.text
        elif response.headers.get("content-type", [""])[0].startswith("application/json"):
            # A success body is what the OpenAPI document says (the typed response models).
            operation.validate_response(response)

    check()
    assert calls > 0


# Strings a hostile client sends that the OpenAPI schema doesn't describe: lone surrogates, NUL and
# other controls, chat-template tokens, and JSON nested past any parser's recursion limit.
HOSTILE_TEXT = st.lists(
    st.one_of(
        st.characters(categories=["Cs"]),
        st.characters(max_codepoint=0x1F),
        st.sampled_from(["<|im_start|>", "</Passage>", "\ufeff", "a", " "]),
    ),
    min_size=1,
    max_size=20,
).map("".join)
DEEP_JSON = st.integers(min_value=1, max_value=3000).map(lambda n: '{"a":' * n + "1" + "}" * n)


@given(text=HOSTILE_TEXT, metadata=st.one_of(DEEP_JSON, HOSTILE_TEXT.map(lambda t: json.dumps({"k": t}))))
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_hostile_strings_never_cause_a_server_error(target: Target, text: str, metadata: str) -> None:
    base, key = target.base, target.key
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    chat = {
        "model": "sourcebook",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": text}]},
            {"role": "assistant", "content": text},
            {"role": "user", "content": "vpn " + text},
        ],
    }
    responses = [
        httpx.post(f"{base}/v1/chat/completions", content=json.dumps(chat), headers=headers, timeout=60),
        httpx.post(f"{base}/v1/retrieve", content=json.dumps({"query": text}), headers=headers, timeout=60),
        httpx.post(
            f"{base}/v1/documents",
            files={"file": ("a.md", b"# a")},
            data={"groups": "everyone", "metadata": metadata},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        ),
    ]
    for response in responses:
        assert response.status_code < 500, response.text[:300]
        if response.status_code >= 400:
            assert {"message", "type", "code"} <= response.json()["error"].keys()


def test_nul_characters_are_the_callers_error_not_the_databases(target: Target) -> None:
    base, key = target.base, target.key
    headers = {"Authorization": f"Bearer {key}"}
    feedback = {"answer_id": "00000000-0000-0000-0000-000000000000", "rating": "up", "comment": "a\x00b"}
    cases = [
        httpx.post(f"{base}/v1/feedback", json=feedback, headers=headers),
        httpx.get(f"{base}/v1/documents", params={"source_prefix": "x\x00"}, headers=headers),
        httpx.post(f"{base}/v1/retrieve", json={"query": "vpn", "source_prefix": "\x00"}, headers=headers),
        httpx.post(
            f"{base}/v1/documents",
            files={"file": ("a.md", b"# a")},
            data={"groups": "everyone", "title": "t\x00"},
            headers=headers,
        ),
        httpx.post(
            f"{base}/v1/documents",
            files={"file": ("a.md", b"# a")},
            data={"groups": "everyone", "metadata": '{"k": "\\u0000"}'},
            headers=headers,
        ),
    ]
    for response in cases:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_request"


def test_debug_logs_of_a_request_carry_its_trace_id_and_no_key_question_or_passage(
    target: Target, tmp_path: Path, spans: object
) -> None:
    # A tenant of its own: the fuzzer's generated policies (a denied topic, a length cap) apply to "fuzz".
    base, key = target.base, target.quiet_key
    configure_logging(make_settings(tmp_path, log_level="DEBUG", log_format="json"))
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.name} {record.getMessage()} {record.__dict__}")

    keep = Keep(level=logging.DEBUG)
    keep.addFilter(TraceContext())
    logging.getLogger().addHandler(keep)
    question = "How do I request a new laptop, codename ZEBRA-4471?"
    response = httpx.post(
        f"{base}/v1/chat/completions",
        json={"model": "sourcebook", "messages": [{"role": "user", "content": question}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert response.status_code == 200
    # No model server: the answer was extractive, which is logged (a warning) inside the request's trace.
    warnings = [line for line in lines if line.startswith("answer.generation") and "extractive" in line]
    assert warnings
    assert all("'trace_id'" in line for line in warnings)
    text = "\n".join(lines)
    assert key not in text
    assert key.split("_")[2] not in text
    assert "ZEBRA-4471" not in text
    citations = response.json()["citations"]
    assert citations, response.text
    quoted = citations[0]["quote"]
    assert quoted[:40] not in text
