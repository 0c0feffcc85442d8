"""``sourcebook policy`` and ``sourcebook reviews`` against a real PostgreSQL: what they print, what
they store, and errors as one line with their code (never a traceback)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import psycopg
import pytest
from typer.testing import CliRunner

from answer.reviews import REVIEW_STATUSES, enqueue_review
from sourcebook.cli import app, main
from sourcebook.cli import reviews as reviews_cli
from sourcebook.db import Conn
from sourcebook.keys import ensure_tenant
from tests.conftest import cli_env
from tests.review_helpers import add_answer, add_document

pytestmark = pytest.mark.db

runner = CliRunner()


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return cli_env(database_url)


@pytest.fixture
def conn(database_url: str) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def failing(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """Run the console script's entry on ``argv``: it must exit 1 with an ``error (code): …`` line,
    returned, and no traceback."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["sourcebook", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error (")]
    return line


def test_policy_set_show_and_versions(
    tmp_path: Path, env: dict[str, str], conn: Conn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_tenant(conn, "cli-co")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"pii": "block", "denied_topics": [{"name": "salaries", "keywords": ["salary"]}]}))
    first = runner.invoke(app, ["policy", "set", "--tenant", "cli-co", "--file", str(policy)], env=env)
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "tenant cli-co: policy version 1"
    second = runner.invoke(
        app, ["policy", "set", "--tenant", "cli-co", "--file", "-"], input='{"secrets": "redact"}', env=env
    )
    assert second.stdout.strip() == "tenant cli-co: policy version 2"

    shown = json.loads(runner.invoke(app, ["policy", "show", "--tenant", "cli-co", "--json"], env=env).stdout)
    assert (shown["version"], shown["policy"]["secrets"], shown["policy"]["pii"]) == (2, "redact", "redact")
    older = runner.invoke(app, ["policy", "show", "--tenant", "cli-co", "--version", "1", "--json"], env=env)
    assert json.loads(older.stdout)["policy"]["denied_topics"][0]["name"] == "salaries"
    table = runner.invoke(app, ["policy", "show", "--tenant", "cli-co", "--version", "1"], env=env).stdout
    assert "version 1" in table
    assert "denied topic 'salaries'" in table
    assert "keywords: salary" in table
    default = runner.invoke(app, ["policy", "show", "--tenant", "cli-co", "--version", "0"], env=env).stdout
    assert "the built-in default" in default
    versions = runner.invoke(app, ["policy", "versions", "--tenant", "cli-co"], env=env).stdout
    assert versions.count("(CLI)") == 2

    bad = tmp_path / "bad.json"
    bad.write_text('{"review_below": 3}')
    assert "(invalid_request)" in failing(
        ["policy", "set", "--tenant", "cli-co", "--file", str(bad)], env, monkeypatch, capsys
    )
    bad.write_text("{not json")
    assert "not valid JSON" in failing(
        ["policy", "set", "--tenant", "cli-co", "--file", str(bad)], env, monkeypatch, capsys
    )
    assert "(not_found)" in failing(
        ["policy", "set", "--tenant", "nobody", "--file", str(policy)], env, monkeypatch, capsys
    )
    assert "(not_found)" in failing(
        ["policy", "show", "--tenant", "cli-co", "--version", "9"], env, monkeypatch, capsys
    )


def test_reviews_list_show_and_decide(
    env: dict[str, str], conn: Conn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Text from users and models is printed as written, never read as markup.
    question = "Ana's [bold]pay[/]?"
    answer = add_answer(conn, "cli-rev", [(add_document(conn, "cli-rev", ["hr"]), (41, 42))], question=question)
    review_id = enqueue_review(conn, tenant_id="cli-rev", answer_id=answer.id, reason="support:0.2")
    listed = runner.invoke(app, ["reviews", "list", "--tenant", "cli-rev"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "support:0.2" in listed.stdout
    assert question in listed.stdout
    page = json.loads(runner.invoke(app, ["reviews", "list", "--status", "pending", "--json"], env=env).stdout)
    assert review_id in [r["id"] for r in page["data"]]

    shown = runner.invoke(app, ["reviews", "show", str(review_id)], env=env).stdout
    assert f"question: {question}" in shown
    assert "[1] Travel policy (chunk 41) “Trains are booked.”" in shown
    assert "answer: By train [1]." in shown
    assert "retrieved chunks: 41, 42" in shown
    as_json = json.loads(runner.invoke(app, ["reviews", "show", str(review_id), "--json"], env=env).stdout)
    assert (as_json["status"], as_json["answer_id"]) == ("pending", str(answer.id))

    both = ["reviews", "decide", str(review_id), "--approve", "--reject"]
    assert "exactly one" in failing(both, env, monkeypatch, capsys)
    letters = ["reviews", "decide", str(review_id), "--correct", "By bus.", "--chunks", "forty"]
    assert "(invalid_request)" in failing(letters, env, monkeypatch, capsys)
    decide = ["reviews", "decide", str(review_id), "--correct", "By bus [1].", "--chunks", "42", "--note", "checked"]
    decided = runner.invoke(app, decide, env=env)
    assert decided.exit_code == 0, decided.output
    assert decided.stdout.strip() == f"review {review_id}: corrected"
    row = conn.execute(
        "SELECT status, corrected_answer, supporting_chunk_ids, reviewer_key_id, note FROM reviews WHERE id = %s",
        (review_id,),
    ).fetchone()
    assert row == ("corrected", "By bus [1].", [42], None, "checked")
    assert (
        "corrected answer: By bus [1]. (supporting chunks: 42)"
        in runner.invoke(app, ["reviews", "show", str(review_id)], env=env).stdout
    )
    assert "(conflict)" in failing(["reviews", "decide", str(review_id), "--reject"], env, monkeypatch, capsys)
    assert "(not_found)" in failing(["reviews", "show", "999999"], env, monkeypatch, capsys)


@pytest.mark.unit
def test_the_cli_knows_every_review_state() -> None:
    assert get_args(reviews_cli.Status) == REVIEW_STATUSES
