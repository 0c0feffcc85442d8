"""``sourcebook eval retrieval`` on the committed SQuAD sample, against the real database and model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sourcebook.cli import app
from tests.conftest import TEST_PEPPER

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]
SQUAD_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "eval" / "squad-sample"
runner = CliRunner()


def test_eval_retrieval_reports_every_mode_matches_rank_bm25_and_gates_on_the_baseline(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        "SOURCEBOOK_DATABASE_URL": database_url,
        "SOURCEBOOK_DATA_DIR": str(tmp_path / "data"),
        "SOURCEBOOK_KEY_PEPPER": TEST_PEPPER,
        "SOURCEBOOK_ENVIRONMENT": "test",
        "SOURCEBOOK_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }
    out, baseline = tmp_path / "out", tmp_path / "baseline.json"
    args = ["eval", "retrieval", "--dataset", str(SQUAD_SAMPLE), "--mode", "bm25,vector,hybrid,rank_bm25"]
    args += ["--max-queries", "150", "--out", str(out), "--baseline", str(baseline)]

    first = runner.invoke(app, [*args, "--update-baseline"], env=env)
    assert first.exit_code == 0, first.output
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["documents"], summary["queries"], summary["ingested_now"]) == (200, 150, 200)
    assert summary["bm25_matches_rank_bm25_top10"] == "150/150"
    modes = summary["modes"]
    assert modes["bm25"]["metrics"] == pytest.approx(modes["rank_bm25"]["metrics"])
    for mode in ("bm25", "vector", "hybrid"):
        assert modes[mode]["metrics"]["recall@100"] >= 0.9, (mode, modes[mode])
        assert modes[mode]["metrics"]["ndcg@10"] >= 0.5, (mode, modes[mode])
    per_query = json.loads((out / "per_query-hybrid.json").read_text())
    assert len(per_query) == 150
    assert {"ranked", "ndcg@10", "recall@10", "recall@100", "mrr@10"} <= set(next(iter(per_query.values())))
    assert (out / "report.html").read_text().count("<svg") == 4
    assert "| hybrid |" in (out / "report.md").read_text()
    assert json.loads(baseline.read_text())["hybrid"] == modes["hybrid"]["metrics"]

    # The same run against a baseline it falls short of: a regression, exit code 1, nothing re-ingested.
    better = {
        mode: {m: min(1.0, v + 0.05) for m, v in metrics.items()}
        for mode, metrics in json.loads(baseline.read_text()).items()
    }
    baseline.write_text(json.dumps(better))
    second = runner.invoke(app, args, env=env)
    assert second.exit_code == 1, second.output
    assert "regression" in second.output
    assert json.loads((out / "summary.json").read_text())["ingested_now"] == 0
