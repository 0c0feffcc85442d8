"""The judges: agreement figures on labelled verdicts, failure kinds, and ragas' Faithfulness for real
on SmolLM2 through vLLM's structured output (plumbing: a 135M judge's scores mean little, and its
failures must be counted, not dropped)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from evals import meta
from evals.judge import Judge, JudgeConfig, failure_counts, failure_kind
from sourcebook.llm.server import VllmServer

ROW = {
    "knowledge": "The Lisbon office opened in 1987. It has forty desks and a library on the second floor.",
    "question": "When did the Lisbon office open?",
    "right_answer": "It opened in 1987.",
    "hallucinated_answer": "It opened in 2003, with sixty desks.",
}


@pytest.mark.unit
def test_agreement_is_balanced_accuracy_and_auroc_over_the_scored_answers() -> None:
    verdicts = meta.Verdicts("judge", (0, 0, 1, 1, 1), (0.1, 0.6, 0.7, 0.9, None), (False, True, True, True, None))
    found = meta.agreement(verdicts)
    assert found == meta.Agreement(0.75, 1.0, 4, 1)  # the failed answer is counted, not scored
    assert meta.agreement(meta.Verdicts("none", (1,), (None,), (None,))) == meta.Agreement(None, None, 0, 1)


@pytest.mark.unit
def test_failures_are_named_by_kind() -> None:
    assert failure_kind(TimeoutError()) == "timeout"
    assert failure_kind(ValueError("1 validation error for StatementGeneratorOutput")) == "bad_json"
    assert failure_kind(RuntimeError("boom")) == "error"
    assert [(i.id, label) for i, label in meta.halueval_answers([ROW])] == [("0/0", 0), ("0/1", 1)]


@pytest.mark.model
def test_answer_relevancys_embeddings_draw_no_progress_bar_over_the_judges(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)  # the CLI's level, at which sentence-transformers draws a bar per encode
    logging.getLogger("sentence_transformers").setLevel(logging.NOTSET)
    config = JudgeConfig("http://127.0.0.1:9/v1", "judge", metrics=("answer_relevancy",))
    embeddings = Judge(config).build().metrics["answer_relevancy"].embeddings
    capfd.readouterr()
    vectors = [embeddings.embed_text(text) for text in ("When did the Lisbon office open?", "It opened in 1987.")]
    assert [len(v) for v in vectors] == [384, 384]
    assert capfd.readouterr().err == ""


@pytest.mark.llm
@pytest.mark.model
@pytest.mark.slow
def test_ragas_faithfulness_runs_on_the_local_judge_and_counts_its_failures(small_llm: VllmServer) -> None:
    config = JudgeConfig(
        small_llm.url, "smollm2-135m-instruct", "json_schema", timeout_s=45, max_tokens=192, metrics=("faithfulness",)
    )
    verdicts, judged = asyncio.run(meta.faithfulness_verdicts(Judge(config).build(), [ROW]))
    assert verdicts.labels == (0, 1)
    for score, flagged in zip(verdicts.scores, verdicts.flagged, strict=True):
        assert (score is None) == (flagged is None)  # a failure leaves neither
        assert score is None or 0.0 <= score <= 1.0
    counts = failure_counts(judged)["faithfulness"]
    assert counts["items"] == 2
    failed = sum(n for kind, n in counts.items() if kind not in ("items", "scored"))
    assert counts["scored"] + failed == 2  # every answer is a score or a counted failure
    assert failed == sum(score is None for score in verdicts.scores)
