"""The CI answer suite (``data/eval/ci-answers``: 30 items over bundled samples and SQuAD paragraphs)
through the real answer pipeline on SmolLM2, and the regression gate failing on a prompt broken on
purpose: its passages are lettered instead of numbered, so the model's choice of passage names none
shown and the answer becomes the abstention."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from guardrails.policies import save_policy
from sourcebook.cli import app
from sourcebook.keys import ensure_tenant
from sourcebook.llm.server import VllmServer
from tests.evals_helpers import cli_env

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.llm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CI_SET = ROOT / "data" / "eval" / "ci-answers" / "ci-answers"
runner = CliRunner()
EVAL_TENANT = "eval-ci-answers"


def _broken_prompts(tmp_path: Path) -> Path:
    """The shipped prompts plus ``answer/broken``: v7 with its passages lettered (A, B, ...) instead of
    numbered, the kind of template slip the gate is for: the model names letters, which name no passage."""
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    broken = prompts / "answer" / "broken"
    shutil.copytree(prompts / "answer" / "v7", broken)
    user = (broken / "user.j2").read_text(encoding="utf-8")
    lettered = '<passage number="{{ "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[p.number - 1] }}"'
    (broken / "user.j2").write_text(user.replace('<passage number="{{ p.number }}"', lettered), encoding="utf-8")
    system = (broken / "system.j2").read_text(encoding="utf-8")
    for number, letter in (("1", "A"), ("2", "B")):
        system = system.replace(f'<passage number="{number}"', f'<passage number="{letter}"')
    system = system.replace("answer this question? 1\n", "answer this question? A\n")
    (broken / "system.j2").write_text(system, encoding="utf-8")
    return prompts


def test_the_ci_suite_sets_a_baseline_and_the_gate_fails_on_a_broken_prompt(
    database_url: str, tmp_path: Path, small_llm: VllmServer
) -> None:
    env = cli_env(
        database_url,
        tmp_path / "data",
        SOURCEBOOK_LLM_BASE_URL=small_llm.url,
        SOURCEBOOK_PROMPTS_DIR=str(_broken_prompts(tmp_path)),
    )
    # The suite measures the prompt: the eval tenant's guards mark SmolLM2's unsupported sentences
    # instead of removing them, so that their removal (and the abstention it leaves) is not counted
    # as the prompt's false abstention.
    with psycopg.connect(database_url) as conn:
        ensure_tenant(conn, EVAL_TENANT)
        save_policy(conn, tenant_id=EVAL_TENANT, body={"unsupported": "mark"}, api_key_id=None)
    first = runner.invoke(
        app, ["eval", "answers", "--set", str(CI_SET), "--update-baseline", "--out", str(tmp_path / "a")], env=env
    )
    assert first.exit_code == 0, first.output
    assert "run 1 is now the baseline of ci-answers" in first.output
    base = json.loads(next(line for line in first.output.splitlines() if line.startswith('{"run"')))
    assert base["summary"]["items"] == 30
    assert base["summary"]["extractive"] == 0  # the model answered every question
    # SmolLM2 abstains from a third to a half of the answerable questions: room left for a regression
    assert base["metrics"]["false_abstention"]["mean"] < 0.75

    args = ["eval", "answers", "--set", "ci-answers", "--prompt-version", "broken", "--out", str(tmp_path / "b")]
    second = runner.invoke(app, args, env=env)
    assert second.exit_code == 1, second.output
    assert "regression against run 1: false_abstention" in second.output
    report = (tmp_path / "b" / "report.md").read_text()
    assert "## Change against the baseline run 1" in report
    assert (tmp_path / "b" / "report.html").read_text().count("data:image/png;base64,") == 4

    compared = runner.invoke(app, ["eval", "compare", "1", "2"], env=env)
    assert compared.exit_code == 0, compared.output
    assert "false_abstention" in compared.output
    assert "changed most" in compared.output
