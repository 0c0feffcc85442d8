"""``sourcebook eval retrieval`` on the committed SQuAD sample, against the real database and model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sourcebook.cli import app
from sourcebook.errors import ErrorCode, SourcebookError
from tests.evals_helpers import cli_env

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]
SQUAD_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "eval" / "squad-sample"
runner = CliRunner()


def test_eval_retrieval_reports_every_mode_matches_rank_bm25_and_gates_on_the_baseline(
    database_url: str, tmp_path: Path
) -> None:
    env = cli_env(database_url, tmp_path / "data")
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
    # No model server: every answer is the extractive fallback, which the scores never credit.
    env = cli_env(
        database_url, tmp_path / "data", SOURCEBOOK_LLM_BASE_URL="http://127.0.0.1:9/v1", SOURCEBOOK_LLM_TIMEOUT_S="0.5"
    )
    out = tmp_path / "out"
    args = ["eval", "answers", "--set", str(folder), "--out", str(out), "--update-baseline"]
    result = runner.invoke(app, args, env=env)
    # No model gave these answers: the run is stored and reported, but exits 3 and is no baseline.
    assert result.exit_code == 3, result.output
    assert "is not made the baseline" in result.output
    line = next(line for line in result.output.splitlines() if line.startswith('{"run"'))
    stored = json.loads(line)
    summary = stored["summary"]
    assert (summary["items"], summary["answerable"], summary["unanswerable"]) == (2, 1, 1)
    assert summary["extractive"] == 2
    assert summary["correct"] == 0.0
    assert summary["right_abstention"] == 0.0
    assert summary["shown_holds"] == 1.0  # retrieval found the office guide for the answerable question
    assert stored["metrics"]["abstention_recall"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 1}
    assert "2 answers were extractive" in result.output
    assert "| correct | 0.000 |" in (out / "report.md").read_text()
    ab = runner.invoke(app, ["eval", "answers", "--set", "tiny", "--ab", "prompt=v2,v7"], env=env)
    assert ab.exit_code == 3, ab.output
    assert "comparison" in ab.output
    assert all(json.loads(line)["baseline"] is None for line in ab.output.splitlines() if line.startswith('{"run"'))
    listed = runner.invoke(app, ["eval", "runs", "--set", "tiny"], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("finished") == 3

    # A finished run doesn't resume; `sourcebook` (main) prints a SourcebookError as its code and fix.
    again = runner.invoke(app, ["eval", "answers", "--set", "tiny", "--resume", str(stored["run"])], env=env)
    assert isinstance(again.exception, SourcebookError)
    assert "only an unfinished run of this set resumes" in again.exception.message
    missing = runner.invoke(app, ["eval", "answers", "--set", str(tmp_path / "nowhere")], env=env)
    assert isinstance(missing.exception, SourcebookError)
    assert missing.exception.code is ErrorCode.NOT_FOUND
    assert "no eval set named" in missing.exception.message


def test_build_set_stores_a_squad_set_with_abstentions_and_exports_it(database_url: str, tmp_path: Path) -> None:
    from evals.goldens import GoldenItem, GoldenSet, read_set, write_set

    squad = {
        "data": [
            {
                "title": "Lisbon",
                "paragraphs": [
                    {
                        "context": "The Lisbon office opened in 1987.",
                        "qas": [
                            {"id": "q1", "question": "When did the Lisbon office open?", "answers": [{"text": "1987"}]}
                        ],
                    },
                ],
            }
        ]
    }
    (tmp_path / "squad.json").write_text(json.dumps(squad))
    other = write_set(tmp_path / "other", GoldenSet("other", "x", (GoldenItem("o1", "Who won in 1966?", "England"),)))
    env = cli_env(database_url, tmp_path / "data")
    args = ["eval", "build-set", "--name", "lisbon", "--from-squad", str(tmp_path / "squad.json")]
    built = runner.invoke(app, [*args, "--abstain-from", str(other), "--abstain", "1"], env=env)
    assert built.exit_code == 0, built.output
    assert "lisbon: 2 items (1 to abstain)" in built.output
    exported = runner.invoke(app, ["eval", "export-set", "lisbon", "--out", str(tmp_path / "out")], env=env)
    assert exported.exit_code == 0, exported.output
    golden = read_set(tmp_path / "out" / "lisbon")
    assert [(i.id, i.reference_answer, i.must_abstain) for i in golden.items] == [
        ("q1", "1987", False),
        ("abstain/o1", None, True),
    ]
    assert (tmp_path / "data" / "evals" / "sets" / "corpora" / "lisbon" / "Lisbon-000.md").is_file()
    both = runner.invoke(app, ["eval", "build-set", "--name", "x", "--from-feedback", "--from-reviews"], env=env)
    assert isinstance(both.exception, SourcebookError)
    assert "exactly one source" in both.exception.message
