"""The API end to end: real PostgreSQL, real MiniLM, real vLLM (SmolLM2), real HTTP, the official
`openai` client. SmolLM2 writes weak answers: these tests check the plumbing and its guarantees
(auth, isolation, envelope, stream shape, provenance), not answer quality."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from answer.store import load_answer
from guardrails.policies import save_policy
from guardrails.policy import TenantPolicy
from ingest.embed import SentenceTransformerEmbedder
from sourcebook.cli import app as cli_app
from sourcebook.db import Database, open_database
from sourcebook.keys import revoke_key
from sourcebook.llm.server import VllmServer
from sourcebook.models import resolve_model
from sourcebook.settings import Settings
from tests.conftest import make_settings
from tests.serving_helpers import (
    PEPPER,
    generation_settles_below,
    generation_tokens,
    ingest_samples,
    new_key,
    running_api,
)

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.llm, pytest.mark.slow]

SAMPLE_FILES = [
    "laptop_request_howto.md",
    "vpn_setup.md",
    "remote_work_policy.md",
    "it_support_contacts.txt",
    "salary_bands_2025.docx",
]


@pytest.fixture(scope="module")
def api_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory, small_llm: VllmServer) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("api"),
        database_url=database_url,
        llm_base_url=small_llm.url,
        llm_timeout_s=2.0,
        answer_max_tokens=48,
        # One step: these tests need a streamed answer, and at a two-step prompt's first step SmolLM2
        # often names no passage (README, Answer quality). The two steps are tested on the scripted
        # model (tests/answer/test_answer_service.py) and with the demo model (test_answer_quality.py).
        answer_prompt_version="v3",
    )


@pytest.fixture(scope="module")
def database(api_settings: Settings) -> Iterator[Database]:
    with open_database(api_settings) as db:
        embedder = SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")
        ingest_samples(db, embedder, "acme", SAMPLE_FILES)
        yield db


@pytest.fixture(scope="module")
def api(api_settings: Settings, database: Database) -> Iterator[str]:
    with running_api(api_settings) as (base, _):
        yield base


@pytest.fixture(scope="module")
def key(database: Database) -> str:
    return new_key(database, "acme")


def client(api: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api}/v1", api_key=key, max_retries=0, timeout=120)


def ask(api: str, key: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{api}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def question(text: str, **extra: object) -> dict[str, object]:
    return {"model": "sourcebook", "messages": [{"role": "user", "content": text}], **extra}


def test_an_answer_through_the_openai_client_is_well_formed_and_its_provenance_is_stored(
    api: str, key: str, database: Database, api_settings: Settings
) -> None:
    completion = client(api, key).chat.completions.create(
        model="sourcebook", messages=[{"role": "user", "content": "How do I request a new laptop?"}]
    )
    assert completion.object == "chat.completion"
    assert completion.model == "sourcebook"
    text = completion.choices[0].message.content
    assert text
    extra = completion.model_extra or {}
    meta = extra["sourcebook"]
    assert meta["prompt_version"].startswith(f"answer/{api_settings.answer_prompt_version}#")
    assert meta["verdict"]["outcome"] in {"answer", "abstain"}, meta["verdict"]
    verdict = meta["verdict"]
    if verdict["outcome"] == "answer" and not extra["citations"]:
        assert verdict["flagged"], verdict  # an answer that cites nothing is never let out unflagged
        assert "no_citations" in {f["code"] for f in verdict["findings"]}
    if not verdict["findings"] and not verdict["review"]:
        assert not verdict["flagged"], verdict  # SmolLM2 may echo the prompt, which flags it
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    with database.pool.connection() as conn:
        stored = load_answer(conn, meta["answer_id"], tenant_id="acme")
    assert stored.answer == text
    assert stored.model == "smollm2-135m-instruct"
    assert stored.question == "How do I request a new laptop?"
    retrieved_docs = {r["document_id"] for r in stored.retrieved}
    assert {c["document_id"] for c in extra["citations"]} <= retrieved_docs
    with database.pool.connection() as conn:
        laptop = conn.execute(
            "SELECT id FROM documents WHERE tenant_id = 'acme' AND source_uri LIKE %s", ("%laptop_request_howto.md",)
        ).fetchone()
    assert laptop is not None
    assert str(laptop[0]) == stored.retrieved[0]["document_id"]
    assert {"embed", "search", "generate", "total"} <= set(stored.latency_ms)


def test_a_streamed_answer_has_openai_chunks_citations_and_a_final_verdict(
    api: str, key: str, database: Database
) -> None:
    stream = client(api, key).chat.completions.create(
        model="sourcebook", messages=[{"role": "user", "content": "How do I set up the VPN?"}], stream=True
    )
    pieces: list[str] = []
    finals: list[dict[str, object]] = []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        extra = chunk.model_extra or {}
        if "sourcebook" in extra:
            assert chunk.choices[0].finish_reason == "stop"
            finals.append(extra)
    assert len(finals) == 1
    answer_id = finals[0]["sourcebook"]["answer_id"]  # type: ignore[index]
    with database.pool.connection() as conn:
        stored = load_answer(conn, answer_id)
    assert "".join(pieces) == stored.answer
    assert stored.rewrite["method"] == "first-turn"
    assert stored.rewrite["reranker"] == "none"  # the provenance names the reranker with the fusion
    assert "(settings)" in stored.rewrite["retrieval_settings"]


def test_the_raw_stream_ends_with_done_and_answers_show_prints_the_provenance(
    api: str, key: str, api_settings: Settings
) -> None:
    with httpx.stream(
        "POST",
        f"{api}/v1/chat/completions",
        json=question("Who do I call for IT support?", stream=True),
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    final = json.loads(lines[-2].removeprefix("data: "))
    result = CliRunner().invoke(
        cli_app, ["answers", "show", final["sourcebook"]["answer_id"]], env=_cli_env(api_settings)
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["question"] == "Who do I call for IT support?"
    assert shown["prompt_version"] == final["sourcebook"]["prompt_version"]


def _cli_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None
    return {
        "SOURCEBOOK_DATABASE_URL": settings.database_url.get_secret_value(),
        "SOURCEBOOK_DATA_DIR": str(settings.data_dir),
        "SOURCEBOOK_KEY_PEPPER": PEPPER,
        "SOURCEBOOK_ENVIRONMENT": "test",
        "SOURCEBOOK_LOG_LEVEL": "ERROR",
    }


def test_a_follow_up_is_rewritten_by_the_model_and_the_rewrite_is_stored(
    api: str, key: str, database: Database
) -> None:
    messages = [
        {"role": "user", "content": "How do I request a new laptop?"},
        {"role": "assistant", "content": "Use the Hardware Request form in the IT portal [1]."},
        {"role": "user", "content": "And how long does it take?"},
    ]
    body = ask(api, key, {"model": "sourcebook", "messages": messages}).json()
    meta = body["sourcebook"]
    assert meta["rewrite_method"] in {"llm", "llm-rejected"}
    with database.pool.connection() as conn:
        stored = load_answer(conn, meta["answer_id"])
    assert stored.history_turns == 2
    assert stored.history_hash is not None
    assert stored.question == "And how long does it take?"
    assert stored.rewrite["standalone"]
    assert stored.rewrite["method"] == meta["rewrite_method"]
    if meta["rewrite_method"] == "llm-rejected":
        assert stored.rewrite["standalone"] == "How do I request a new laptop? And how long does it take?"


def test_each_key_sees_only_its_tenant_and_groups(api: str, database: Database) -> None:
    everyone = new_key(database, "acme", groups=["everyone"])
    hr = new_key(database, "acme", groups=["everyone", "hr"])
    outsider = new_key(database, "globex", groups=["everyone", "hr"])

    def titles(token: str) -> set[str]:
        response = httpx.post(
            f"{api}/v1/retrieve",
            json={"query": "salary bands 2025 compensation", "top_k": 20},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return {p["title"] for p in response.json()["data"]}

    assert any("Salary" in t for t in titles(hr))
    assert not any("Salary" in t for t in titles(everyone))
    assert titles(outsider) == set()
    # With nothing to read, the answer is the abstention and no model is asked.
    body = ask(api, outsider, question("What are the salary bands?")).json()
    assert body["sourcebook"]["verdict"]["outcome"] == "abstain"
    assert body["citations"] == []
    assert body["usage"]["total_tokens"] == 0
    assert body["sourcebook"]["generator"] == "none (no passages)"


def test_missing_unknown_revoked_and_underprivileged_keys(api: str, database: Database) -> None:
    body = question("hello")
    missing = httpx.post(f"{api}/v1/chat/completions", json=body, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthenticated"
    unknown = ask(api, "sb_000000000000_" + "A" * 43, body)
    assert unknown.status_code == 401
    assert unknown.json()["error"]["message"] == "unknown API key"
    revoked = new_key(database, "acme")
    with database.pool.connection() as conn:
        revoke_key(conn, key_id=revoked.split("_")[1])
    assert ask(api, revoked, body).status_code == 401
    ingest_only = new_key(database, "acme", scopes=["ingest"])
    forbidden = ask(api, ingest_only, body)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    models = httpx.get(f"{api}/v1/models", headers={"Authorization": f"Bearer {ingest_only}"}, timeout=10)
    assert [m["id"] for m in models.json()["data"]] == ["sourcebook"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "invalid_request"),
        ({"model": "sourcebook"}, 400, "invalid_request"),
        ({"model": "sourcebook", "messages": []}, 400, "invalid_request"),
        (question("x" * 5000), 400, "invalid_request"),
        ({"model": "sourcebook", "messages": [{"role": "tool", "content": "x"}]}, 400, "invalid_request"),
        ({"model": "sourcebook", "messages": [{"role": "assistant", "content": "x"}]}, 400, "invalid_request"),
        (question("hi", n=2), 400, "invalid_request"),
        (question("hi", max_tokens=0), 400, "invalid_request"),
        (question("hi", model="gpt-4"), 404, "not_found"),
        ({"model": "sourcebook", "messages": [{"role": "user", "content": "y" * 2_000_000}]}, 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_their_status_in_the_error_envelope(
    api: str, key: str, body: object, status: int, code: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(
        f"{api}/v1/chat/completions",
        content=content,
        headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in response.text


def test_unknown_routes_and_methods_use_the_envelope(api: str) -> None:
    assert httpx.get(f"{api}/v1/nothing", timeout=10).json()["error"]["code"] == "not_found"
    wrong = httpx.get(f"{api}/v1/chat/completions", timeout=10)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_a_client_that_disconnects_cancels_generation_and_what_was_made_is_stored_and_counted(
    api: str, key: str, small_llm: VllmServer, database: Database
) -> None:
    # Temperature 2 keeps SmolLM2 from ending early: the request is still generating when we leave. Its
    # sentences are noise full of names no passage has: under the default policy the gate would remove
    # them all and show the abstention only at the end, so the tenant's policy marks them instead, and
    # the client sees text while the model is still generating.
    with database.pool.connection() as conn:
        save_policy(conn, tenant_id="acme", body={"unsupported": "mark"}, api_key_id=None)
    try:
        body = question("Describe the remote work policy.", stream=True, max_tokens=600, temperature=2.0)
        before = generation_tokens(small_llm)
        with httpx.stream(
            "POST", f"{api}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as response:
            for line in response.iter_lines():
                if '"content": "' in line and '"content": ""' not in line:
                    answer_id = json.loads(line.removeprefix("data: "))["id"].removeprefix("chatcmpl-")
                    break
        assert generation_settles_below(small_llm, before, 600) > 0
    finally:
        with database.pool.connection() as conn:
            save_policy(conn, tenant_id="acme", body=TenantPolicy().to_json(), api_key_id=None)
    with database.pool.connection() as conn:
        stored = load_answer(conn, str(uuid.UUID(answer_id)), tenant_id="acme")
        usage = conn.execute(
            "SELECT completion_tokens FROM usage WHERE answer_id = %s", (uuid.UUID(answer_id),)
        ).fetchone()
    assert stored.verdict["outcome"] == "incomplete"
    assert stored.verdict["findings"][0]["code"] == "abandoned"
    assert stored.answer
    assert usage is not None
    assert usage[0] > 0, "the tokens made before the client left are counted"


def test_answer_ids_are_not_readable_across_tenants(database: Database, api: str, key: str) -> None:
    answer_id = ask(api, key, question("Who do I call for IT support?")).json()["sourcebook"]["answer_id"]
    with database.pool.connection() as conn:
        assert load_answer(conn, answer_id, tenant_id="acme").id == uuid.UUID(answer_id)
        with pytest.raises(Exception, match="no answer"):
            load_answer(conn, answer_id, tenant_id="globex")


def test_the_cli_asks_with_a_key(api_settings: Settings, key: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["ask", "How do I request a new laptop?", "--key", key, "--json"],
        env={**_cli_env(api_settings), "SOURCEBOOK_LLM_BASE_URL": api_settings.llm_base_url},
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["object"] == "chat.completion"
    # The command runs on the default prompt (two steps, against the real SmolLM2), not the API's.
    default = Settings.model_fields["answer_prompt_version"].default
    assert body["sourcebook"]["prompt_version"].startswith(f"answer/{default}#")


def test_feedback_attaches_to_the_callers_answers_and_is_listed_for_the_eval_scope(
    api: str, key: str, database: Database, api_settings: Settings
) -> None:
    answer_id = ask(api, key, question("Who do I call for IT support?")).json()["sourcebook"]["answer_id"]
    auth = {"Authorization": f"Bearer {key}"}
    given = httpx.post(
        f"{api}/v1/feedback",
        json={"answer_id": answer_id, "rating": "down", "comment": "wrong team", "correction": "Call the IT desk."},
        headers=auth,
        timeout=30,
    )
    assert given.status_code == 201, given.text
    assert given.json()["rating"] == "down"
    assert given.json()["api_key_id"] == key.split("_")[1]
    assert (
        httpx.post(f"{api}/v1/feedback", json={"answer_id": answer_id, "rating": "up"}, headers=auth).status_code == 201
    )

    # Another tenant's answer is as unknown as a made-up one; a bad rating is a 400.
    outsider = {"Authorization": f"Bearer {new_key(database, 'globex')}"}
    foreign = httpx.post(f"{api}/v1/feedback", json={"answer_id": answer_id, "rating": "up"}, headers=outsider)
    assert foreign.status_code == 404
    unknown = httpx.post(f"{api}/v1/feedback", json={"answer_id": str(uuid.uuid4()), "rating": "up"}, headers=auth)
    assert unknown.status_code == 404
    bad = httpx.post(f"{api}/v1/feedback", json={"answer_id": answer_id, "rating": "meh"}, headers=auth)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"

    # Listing needs the eval scope, and shows each rating with its answer's provenance.
    assert httpx.get(f"{api}/v1/feedback", headers=auth).status_code == 403
    evaluator = {"Authorization": f"Bearer {new_key(database, 'acme', scopes=['eval'])}"}
    listed = httpx.get(f"{api}/v1/feedback", params={"rating": "down"}, headers=evaluator).json()
    mine = [f for f in listed["data"] if f["answer_id"] == answer_id]
    assert len(mine) == 1
    assert mine[0]["correction"] == "Call the IT desk."
    assert mine[0]["question"] == "Who do I call for IT support?"
    assert mine[0]["prompt_version"].startswith(f"answer/{api_settings.answer_prompt_version}#")
    page = httpx.get(f"{api}/v1/feedback", params={"limit": 1}, headers=evaluator).json()
    assert len(page["data"]) == 1
    following = httpx.get(f"{api}/v1/feedback", params={"after": page["next_after"]}, headers=evaluator).json()
    assert all(f["id"] > page["next_after"] for f in following["data"])
    assert httpx.get(f"{api}/v1/feedback", params={"limit": 0}, headers=evaluator).status_code == 400


def test_readiness_reports_the_database_the_queue_and_each_model_endpoint(api: str) -> None:
    ready = httpx.get(f"{api}/health/ready", timeout=30)
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"state": "ok"}
    assert body["checks"]["queue"]["waiting_jobs"] == 0
    (endpoint,) = body["checks"]["model_server"]
    assert endpoint["state"] == "ok"
    assert endpoint["breaker"] == "closed"
    assert endpoint["models"] == ["smollm2-135m-instruct"]
    assert httpx.get(f"{api}/health", timeout=10).json() == {"status": "ok"}
