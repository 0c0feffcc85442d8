"""``sourcebook eval retrieval`` on the committed SQuAD sample, against the real database and model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sourcebook.cli import app
from sourcebook.errors import ErrorCode, SourcebookError
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


def test_eval_answers_ingests_the_corpus_asks_every_item_and_writes_the_scores(
    database_url: str, tmp_path: Path
) -> None:
    from evals.goldens import GoldenItem, GoldenSet, write_set

    corpus = tmp_path / "sets" / "corpora" / "tiny"
    corpus.mkdir(parents=True)
    (corpus / "office.md").write_text("# Office guide\n\nThe Lisbon office opened in 1987 and has 40 desks.\n")
    (corpus / "travel.md").write_text("# Travel\n\nTrains are booked through the travel desk two weeks ahead.\n")
    items = (
        GoldenItem("open", "When did the Lisbon office open?", reference_answer="1987", memory_answer="1995"),
        GoldenItem("none", "Who won the 1966 World Cup?", must_abstain=True),
    )
    folder = write_set(tmp_path / "sets", GoldenSet("tiny", "tiny", items))
    env = {
        "SOURCEBOOK_DATABASE_URL": database_url,
        "SOURCEBOOK_DATA_DIR": str(tmp_path / "data"),
        "SOURCEBOOK_KEY_PEPPER": TEST_PEPPER,
        "SOURCEBOOK_ENVIRONMENT": "test",
        "SOURCEBOOK_LOG_LEVEL": "WARNING",
        # No model server: every answer is the extractive fallback, which the scores never credit.
        "SOURCEBOOK_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "SOURCEBOOK_LLM_TIMEOUT_S": "0.5",
        "COLUMNS": "200",
    }
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", "answers", "--set", str(folder), "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["items"], summary["answerable"], summary["unanswerable"]) == (2, 1, 1)
    assert summary["extractive"] == 2
    assert summary["correct"] == 0.0
    assert summary["right_abstention"] == 0.0
    assert summary["shown_holds"] == 1.0  # retrieval found the office guide for the answerable question
    assert "2 answers were extractive" in result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["none", "open"]
    assert {r["outcome"] for r in rows} == {"extractive"}

    # `sourcebook` (main) prints a SourcebookError as its code and fix, without a traceback.
    missing = runner.invoke(app, ["eval", "answers", "--set", str(tmp_path / "nowhere")], env=env)
    assert isinstance(missing.exception, SourcebookError)
    assert missing.exception.code is ErrorCode.NOT_FOUND
    assert "not a golden set" in missing.exception.message
