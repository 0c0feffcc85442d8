from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from sourcebook.cli import app, main, table
from sourcebook.db import migrate
from tests.conftest import cli_env

runner = CliRunner()


@pytest.mark.unit
def test_help_is_fast_because_it_imports_no_torch() -> None:
    code = (
        "import sys, sourcebook.cli; assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("db", "keys", "doctor", "quickstart"):
        assert command in result.output


@pytest.mark.unit
def test_tables_show_text_cells_as_written_and_style_only_the_cells_meant_to_be() -> None:
    out = table("file", "outcome")
    out.add_row("[draft] notes.md", Text("ingested", style="green"))
    out.add_row("install to [/usr/local/bin] [bold]now", "failed")
    screen = Console(record=True, width=120, color_system="truecolor")
    screen.print(out)
    text = screen.export_text()
    assert "[draft] notes.md" in text
    assert "install to [/usr/local/bin] [bold]now" in text
    colours = {segment.text.strip(): segment.style and segment.style.color for segment in screen.render(out)}
    assert colours["ingested"] is not None
    assert colours["failed"] is None


@pytest.mark.unit
def test_an_error_whose_message_holds_brackets_is_printed_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCEBOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["sourcebook", "search", "hotel cap", "-t", "t", "-g", "g", "--mode", "[/bm25]"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "error (invalid_request): unknown mode '[/bm25]'" in err
    assert "Traceback" not in err


@pytest.mark.db
def test_keys_create_list_revoke(database_url: str) -> None:
    env = cli_env(database_url)
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--tenant",
            "cli-co",
            "--name",
            "bot",
            "--scopes",
            "ask,eval",
            "--groups",
            "everyone",
            "--json",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    payload = json.loads(created.stdout)
    assert payload["key"].startswith(f"sb_{payload['id']}_")
    assert payload["scopes"] == ["ask", "eval"]

    listed = runner.invoke(app, ["keys", "list", "--tenant", "cli-co"], env=env)
    assert listed.exit_code == 0
    assert payload["id"] in listed.stdout
    assert payload["key"] not in listed.stdout

    revoked = runner.invoke(app, ["keys", "revoke", payload["id"]], env=env)
    assert revoked.exit_code == 0
    assert "revoked" in revoked.stdout
    assert payload["id"] not in runner.invoke(app, ["keys", "list", "--tenant", "cli-co"], env=env).stdout


@pytest.mark.db
def test_errors_print_their_code_and_fix_and_exit_1(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in cli_env(database_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["sourcebook", "keys", "revoke", "0123456789ab"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "(not_found)" in err
    assert "fix" in err


@pytest.mark.db
def test_db_status_and_upgrade(database_url: str) -> None:
    env = cli_env(database_url)
    status = runner.invoke(app, ["db", "status"], env=env)
    assert status.exit_code == 0
    assert "0001_initial" in status.stdout
    assert "pending" not in status.stdout
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0


@pytest.mark.db
@pytest.mark.slow
def test_quickstart_end_to_end_on_a_fresh_data_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCEBOOK_") and k != "DATABASE_URL"}
    env |= {
        "SOURCEBOOK_DATA_DIR": str(tmp_path / "data"),
        "SOURCEBOOK_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "COLUMNS": "200",
    }
    cli = [str(Path(sys.executable).with_name("sourcebook")), "quickstart", "--no-serve"]
    first = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr + first.stdout
    key_file = tmp_path / "data" / "quickstart.key"
    token = key_file.read_text().strip()
    assert token in first.stdout
    assert key_file.stat().st_mode & 0o077 == 0
    for check in ("database", "pgvector", "migrations", "embedding model"):
        assert any(line.split("│")[1:3] and check in line and " ok " in line for line in first.stdout.splitlines())
    # The search at the end shows passages of the 2025 travel policy, which states the hotel cap.
    passages = first.stdout.split("3 passages (hybrid)", 1)[1]
    assert "2025 edition" in passages, passages
    # Then the question is answered; with no model server (a dead URL here) the answer quotes and cites
    # the top passages, labelled as such.
    answer = first.stdout.split("asking as a member of everyone", 1)[1]
    assert "The language model is unavailable" in answer
    assert "[1] " in answer
    assert "[2] " in answer
    assert "Travel & Expense Policy (2025 edition" in answer
    assert "extractive" in answer
    # The demo tenant is calibrated on the samples after the ingest (on the headings' questions: the
    # quickstart does not wait for a model to write them), the choice stored and used by the search.
    assert "questions from headings" in " ".join(first.stdout.split())
    stderr = " ".join(first.stderr.split())  # long lines wrap at the terminal's width
    shown = subprocess.run(
        [*cli[:1], "tune", "retrieval", "--tenant", "demo", "--show", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)
    assert stored["question_source"] == "headings"
    assert f"fusion: {stored['chosen']} (calibrated " in stderr

    second = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr
    assert token in second.stdout, "the development key is reused while valid"
    assert "retrieval calibrated on" not in second.stdout, "a calibrated tenant is not calibrated again"
    pid_file = tmp_path / "data" / "postgres" / "postmaster.pid"
    assert not pid_file.exists(), "the embedded server stops when the last process exits"


@pytest.mark.db
def test_a_database_connection_lost_mid_command_is_database_unavailable_without_a_traceback(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate.upgrade(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        # Every read of the key table kills the backend that reads it, mid-query.
        conn.execute("ALTER TABLE api_keys RENAME TO api_keys_kept")
        conn.execute(
            "CREATE FUNCTION die() RETURNS SETOF api_keys_kept LANGUAGE plpgsql AS $$ BEGIN"
            " PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); END $$"
        )
        conn.execute("CREATE VIEW api_keys AS SELECT * FROM die()")
    for name, value in cli_env(empty_database_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["sourcebook", "keys", "list", "--tenant", "acme"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "(database_unavailable)" in err
    assert "lost or refused" in err
    assert "sourcebook doctor" in err
    assert "Traceback" not in err
