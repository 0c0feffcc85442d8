"""The serving platform end to end over real HTTP: uploads become jobs and searchable documents, the
answer cache hits and is invalidated by a document change, usage adds up, /metrics moves, spans are
recorded per stage, and the token limit is shared through PostgreSQL. Real PostgreSQL, MiniLM, vLLM."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from ingest import store
from ingest.jobs import WorkerRuntime, build_app, run_worker
from serving.ratelimit import PostgresStorage, RateLimiter
from sourcebook.cli import app as cli_app
from sourcebook.db import Database, open_database
from sourcebook.keys import ensure_tenant
from sourcebook.llm.server import VllmServer
from sourcebook.settings import Settings
from tests.conftest import TEST_PEPPER, make_settings
from tests.serving_helpers import auth, new_key, running_api

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.llm, pytest.mark.slow]

ALL_SCOPES = ("ask", "ingest", "admin", "eval")
HERON = "Project Blueheron's budget for 2026 is 42 thousand euros, approved by the finance board in March."
OTTER = "The Riverotter badge office opens at 8:15 and issues visitor badges against photo identification."


@pytest.fixture(scope="module")
def platform_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory, small_llm: VllmServer) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("platform"),
        database_url=database_url,
        llm_base_url=small_llm.url,
        llm_timeout_s=2.0,
        answer_max_tokens=24,
        upload_max_mb=1,
        rate_limit_requests="1000/minute",
        tenant_rate_limits={"tight": {"tokens": "50/minute"}},
        prices={"*": {"prompt_per_1k": 0.5, "completion_per_1k": 1.5}},
    )


@pytest.fixture(scope="module")
def database(platform_settings: Settings) -> Iterator[Database]:
    with open_database(platform_settings) as db:
        yield db


@pytest.fixture(scope="module")
def api(platform_settings: Settings, database: Database, spans: InMemorySpanExporter) -> Iterator[str]:
    with running_api(platform_settings) as (base, _):
        yield base


@pytest.fixture(scope="module")
def seeded(api: str, database: Database, platform_settings: Settings) -> dict[str, str]:
    """An all-scopes key per tenant, each tenant with one document visible to it (one worker run)."""
    keys = {}
    for tenant in ("ledger", "tight", "metered", "traced"):
        keys[tenant] = new_key(database, tenant, groups=("everyone",), scopes=ALL_SCOPES)
        assert upload(api, keys[tenant], [("otter.md", OTTER.encode())], public="true").status_code == 202
    run_jobs(platform_settings, database)
    return keys


def upload(api: str, key: str, files: list[tuple[str, bytes]], **form: str) -> httpx.Response:
    return httpx.post(
        f"{api}/v1/documents",
        files=[("file", (name, content)) for name, content in files],
        data=form,
        headers=auth(key),
        timeout=60,
    )


def run_jobs(settings: Settings, db: Database) -> None:
    """One worker drains the ingestion queue, as `sourcebook worker` would."""
    app, runtime = build_app(settings, db.url), WorkerRuntime(settings, db)
    asyncio.run(run_worker(app, runtime, wait=False, install_signal_handlers=False))


def retrieve(api: str, key: str, query: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/v1/retrieve", json={"query": query, "top_k": 3}, headers=auth(key), timeout=60)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def ask(api: str, key: str, text: str) -> dict[str, Any]:
    body = {"model": "sourcebook", "messages": [{"role": "user", "content": text}]}
    response = httpx.post(f"{api}/v1/chat/completions", json=body, headers=auth(key), timeout=120)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def uploads_left(db: Database) -> int:
    with db.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM uploads").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_an_upload_becomes_a_job_then_a_searchable_document_only_for_its_groups(
    api: str, database: Database, platform_settings: Settings
) -> None:
    owner = new_key(database, "umbrella", groups=("finance",), scopes=ALL_SCOPES)
    outsider = new_key(database, "umbrella", groups=("sales",))
    response = upload(api, owner, [("../../etc/heron.md", HERON.encode())], groups="finance", metadata='{"team": "x"}')
    assert response.status_code == 202, response.text
    [entry] = response.json()["data"]
    assert (entry["filename"], entry["source_uri"], entry["status"]) == ("heron.md", "upload://heron.md", "queued")
    assert entry["mime_type"] == "text/markdown"
    job = httpx.get(f"{api}/v1/jobs/{entry['job_id']}", headers=auth(owner)).json()
    assert job["status"] == "todo"
    assert uploads_left(database) == 1

    run_jobs(platform_settings, database)

    job = httpx.get(f"{api}/v1/jobs/{entry['job_id']}", headers=auth(owner)).json()
    assert job["status"] == "succeeded"
    assert job["results"][-1]["outcome"] == "ingested"
    assert uploads_left(database) == 0, "the stored upload goes with its job"
    hits = retrieve(api, owner, "Blueheron budget")
    assert hits
    assert "42 thousand euros" in hits[0]["text"]
    assert retrieve(api, outsider, "Blueheron budget") == []

    again = upload(api, owner, [("heron.md", HERON.encode())], groups="finance", metadata='{"team": "x"}')
    assert again.status_code == 200
    assert again.json()["data"][0]["status"] == "unchanged"

    listed = httpx.get(f"{api}/v1/documents", params={"source_prefix": "upload://"}, headers=auth(owner)).json()
    [doc] = [d for d in listed["data"] if d["source_uri"] == "upload://heron.md"]
    assert (doc["status"], doc["acl_groups"], doc["metadata"]["team"]) == ("ready", ["finance"], "x")
    assert doc["chunk_count"] >= 1
    shown = httpx.get(f"{api}/v1/documents/{doc['id']}", headers=auth(owner)).json()
    assert [i["outcome"] for i in shown["ingestions"]][:2] == ["unchanged", "ingested"]
    assert httpx.get(f"{api}/v1/documents/{doc['id']}", headers=auth(outsider)).status_code == 403
    # A doc owner of other groups (no admin scope) neither sees nor deletes it, and can't name a
    # document outside upload:// (a folder's document can't be replaced through the API).
    other_owner = new_key(database, "umbrella", groups=("sales",), scopes=("ask", "ingest"))
    assert httpx.get(f"{api}/v1/documents/{doc['id']}", headers=auth(other_owner)).status_code == 404
    assert httpx.delete(f"{api}/v1/documents/{doc['id']}", headers=auth(other_owner)).status_code == 404
    listed_other = httpx.get(f"{api}/v1/documents", headers=auth(other_owner)).json()["data"]
    assert doc["id"] not in {d["id"] for d in listed_other}
    assert httpx.get(f"{api}/v1/jobs/{entry['job_id']}", headers=auth(other_owner)).status_code == 404
    renamed = upload(api, other_owner, [("x.md", b"# x")], groups="sales", source_uri="file:///srv/docs/x.md")
    assert renamed.status_code == 403

    deleted = httpx.delete(f"{api}/v1/documents/{doc['id']}", headers=auth(owner))
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert retrieve(api, owner, "Blueheron budget") == []
    gone = httpx.get(f"{api}/v1/documents/{doc['id']}", headers=auth(owner))
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


def test_uploads_no_job_will_read_are_swept(database: Database) -> None:
    with database.pool.connection() as conn:
        ensure_tenant(conn, "sweepers")
        rows = [
            conn.execute(
                "INSERT INTO uploads (tenant_id, filename, mime_type, size_bytes, sha256, data, created_at) "
                "VALUES ('sweepers', 'a.md', 'text/markdown', 1, 'x', 'a', now() - make_interval(secs => %s)) "
                "RETURNING id",
                (age,),
            ).fetchone()
            for age in (7200, 7200, 60)
        ]
        old_orphan, old_waiting, young = (row[0] for row in rows if row is not None)
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
            "VALUES ('ingest', 'sourcebook.ingest_file', %s, 'todo')",
            (Jsonb({"upload_id": str(old_waiting), "tenant_id": "sweepers"}),),
        )
        assert store.sweep_uploads(conn, older_than_s=3600) == 1
        left = {row[0] for row in conn.execute("SELECT id FROM uploads WHERE tenant_id = 'sweepers'").fetchall()}
        conn.execute("DELETE FROM procrastinate_jobs WHERE args->>'tenant_id' = 'sweepers'")
    assert left == {old_waiting, young}
    assert old_orphan not in left


def test_bad_uploads_are_refused_whole_with_the_file_named_and_nothing_kept(api: str, database: Database) -> None:
    owner = new_key(database, "umbrella", groups=("finance",), scopes=ALL_SCOPES)
    asker = new_key(database, "umbrella", groups=("finance",))
    before = uploads_left(database)

    fake_pdf = upload(api, owner, [("ok.md", b"# fine"), ("report.pdf", b"just text, not a PDF")], groups="finance")
    assert fake_pdf.status_code == 415
    assert fake_pdf.json()["error"]["message"].startswith("report.pdf: unsupported file type")

    binary = upload(api, owner, [("tool.exe", bytes(range(256)) * 40)], groups="finance")
    assert binary.status_code == 415

    big = upload(api, owner, [("big.txt", b"word " * 300_000)], groups="finance")
    assert big.status_code == 413
    assert "big.txt: over the upload limit of 1 MiB" in big.json()["error"]["message"]

    nobody = upload(api, owner, [("a.md", b"# a")])
    assert nobody.status_code == 400
    assert "no access groups" in nobody.json()["error"]["message"]

    clash = upload(api, owner, [("a.md", b"# a"), ("dir/a.md", b"# b")], groups="finance")
    assert clash.status_code == 400

    not_multipart = httpx.post(f"{api}/v1/documents", json={"file": "x"}, headers=auth(owner))
    assert not_multipart.status_code == 415

    assert upload(api, asker, [("a.md", b"# a")], groups="finance").status_code == 403
    assert uploads_left(database) == before


def test_the_answer_cache_hits_for_the_same_question_and_groups_and_a_document_change_invalidates_it(
    api: str, database: Database, platform_settings: Settings
) -> None:
    # The tenant starts empty: the answer is the abstention (final and unflagged, so cacheable; a
    # SmolLM2 answer is often flagged for lack of citations, and flagged answers are never cached).
    owner = new_key(database, "cachetown", groups=("staff",), scopes=ALL_SCOPES)
    other_groups = new_key(database, "cachetown", groups=("staff", "board"))
    first = ask(api, owner, "When does the Riverotter badge office open?")
    assert (first["sourcebook"]["cached"], first["sourcebook"]["verdict"]["outcome"]) == (False, "abstain")
    second = ask(api, owner, "When does the   Riverotter badge office open?")
    assert second["sourcebook"]["cached"] is True
    assert second["sourcebook"]["answer_id"] == first["sourcebook"]["answer_id"]
    assert second["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
    assert second["usage"]["total_tokens"] == 0
    assert ask(api, other_groups, "When does the Riverotter badge office open?")["sourcebook"]["cached"] is False

    assert upload(api, owner, [("otter.md", OTTER.encode())], groups="staff").status_code == 202
    run_jobs(platform_settings, database)
    third = ask(api, owner, "When does the Riverotter badge office open?")
    assert third["sourcebook"]["cached"] is False
    assert third["usage"]["prompt_tokens"] > 0, "with a document to read, the model was asked"


def test_usage_totals_equal_the_requests_made_and_the_month_is_forecast(
    api: str, database: Database, seeded: dict[str, str], platform_settings: Settings
) -> None:
    admin = seeded["ledger"]
    questions = ("When does the badge office open?", "What do visitors need?", "What do visitors need?")
    answers = [ask(api, admin, q) for q in questions]
    assert all(a["usage"]["prompt_tokens"] > 0 for a in answers[:2]), "the model answered"
    retrieve(api, admin, "badge office")
    report = httpx.get(f"{api}/v1/usage", headers=auth(admin)).json()
    totals = report["totals"]
    assert totals["requests"] == 4
    assert totals["cached"] == sum(a["sourcebook"]["cached"] for a in answers)
    assert totals["prompt_tokens"] == sum(a["usage"]["prompt_tokens"] for a in answers)
    assert totals["completion_tokens"] == sum(a["usage"]["completion_tokens"] for a in answers)
    expected = sum(a["usage"]["prompt_tokens"] * 0.5 + a["usage"]["completion_tokens"] * 1.5 for a in answers) / 1000
    assert totals["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert {r["tenant"] for r in report["data"]} == {"ledger"}
    assert report["forecast"]["month_to_date_usd"] == pytest.approx(expected, abs=1e-6)
    assert report["forecast"]["projected_usd"] >= report["forecast"]["month_to_date_usd"]
    asker = new_key(database, "ledger")
    assert httpx.get(f"{api}/v1/usage", headers=auth(asker)).status_code == 403

    assert platform_settings.database_url is not None
    env = {
        "SOURCEBOOK_DATABASE_URL": platform_settings.database_url.get_secret_value(),
        "SOURCEBOOK_DATA_DIR": str(platform_settings.data_dir),
        "SOURCEBOOK_KEY_PEPPER": TEST_PEPPER,
        "SOURCEBOOK_ENVIRONMENT": "test",
        "SOURCEBOOK_LOG_LEVEL": "ERROR",
    }
    printed = CliRunner().invoke(cli_app, ["usage", "--tenant", "ledger", "--json"], env=env)
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout)["totals"] == totals
    shown = CliRunner().invoke(cli_app, ["usage", "--tenant", "ledger"], env=env, terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "projected" in shown.stdout
    assert "linear trend" in shown.stdout or "mean of the days" in shown.stdout


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values


def test_metrics_parse_and_move_with_requests(api: str, seeded: dict[str, str]) -> None:
    key = seeded["metered"]
    route = (("method", "GET"), ("route", "/v1/models"), ("status", "200"))
    before = samples(httpx.get(f"{api}/metrics").text)
    for _ in range(3):
        assert httpx.get(f"{api}/v1/models", headers=auth(key)).status_code == 200
    ask(api, key, "When does the badge office open?")
    after = samples(httpx.get(f"{api}/metrics").text)
    counted = ("sourcebook_http_requests_total", route)
    assert after[counted] - before.get(counted, 0) == 3
    generate = ("sourcebook_stage_duration_seconds_count", (("stage", "generate"),))
    assert after[generate] > before.get(generate, 0)
    assert after[("sourcebook_database_up", ())] == 1.0
    assert ("sourcebook_queue_jobs", (("status", "succeeded"),)) in after
    assert ("sourcebook_ingest_chunks_per_second", ()) in after
    assert any(name == "sourcebook_breaker_state" and dict(labels)["state"] == "closed" for name, labels in after)
    assert any(name == "sourcebook_tokens_total" for name, _ in after)


def test_each_stage_of_an_answer_is_a_span_of_the_request_trace(
    api: str, seeded: dict[str, str], spans: InMemorySpanExporter
) -> None:
    key = seeded["traced"]
    spans.clear()
    answer = ask(api, key, f"When does the badge office open? ({uuid.uuid4().hex[:6]})")
    deadline = time.monotonic() + 10
    while not any(s.name == "POST /v1/chat/completions" for s in spans.get_finished_spans()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    finished = spans.get_finished_spans()
    # The request's root is Observe's server span (FastAPI adds its own spans inside it).
    [server] = [s for s in finished if s.name == "POST /v1/chat/completions" and s.parent is None]
    trace_id = server.context.trace_id
    names = {s.name for s in finished if s.context.trace_id == trace_id}
    stages = {"auth", "cache", "standalone", "rewrite", "embed", "search", "select", "generate", "checks", "store"}
    assert stages <= names
    [root] = [s for s in finished if s.name == "answer" and s.context.trace_id == trace_id]
    assert root.attributes is not None
    assert root.attributes["sourcebook.answer_id"] == answer["sourcebook"]["answer_id"]
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200


def test_the_token_limit_counts_spent_tokens_and_refuses_with_retry_after(
    api: str, database: Database, platform_settings: Settings, seeded: dict[str, str]
) -> None:
    key = seeded["tight"]
    first = ask(api, key, "What does the badge office need from visitors?")
    assert first["usage"]["total_tokens"] > 50
    refused = httpx.get(f"{api}/v1/models", headers=auth(key))
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["kind"] == "tokens"
    assert 1 <= int(refused.headers["Retry-After"]) <= 120
    limiter = RateLimiter(platform_settings, PostgresStorage(database.pool))
    assert limiter.admit("tight", "another-key").allowed, "limits are per key"
