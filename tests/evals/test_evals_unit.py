"""The eval suite's pure parts: metrics, BEIR loading and converters, the report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from evals import report
from evals.datasets import (
    DEBIAN_DOCS_QUESTIONS,
    CorpusDoc,
    debian_docs_to_beir,
    halueval_to_beir,
    load_beir,
    python_faq_to_beir,
    squad_to_beir,
    write_beir,
)
from evals.metrics import mean_metrics, mrr_at, ndcg_at, query_metrics, recall_at
from sourcebook.errors import SourcebookError

pytestmark = pytest.mark.unit


def test_metrics_by_hand() -> None:
    judged = {"a": 1, "b": 2}
    ranked = ["x", "b", "y", "a"]
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranked, judged, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at(ranked, judged, 1) == 0.0
    assert recall_at(ranked, judged, 2) == 0.5
    assert recall_at(ranked, judged, 100) == 1.0
    assert mrr_at(ranked, judged, 10) == 0.5
    assert mrr_at(["x"], judged, 10) == 0.0
    assert query_metrics(["a", "b"], {"a": 1})["ndcg@10"] == 1.0
    assert mean_metrics(
        [{"ndcg@10": 1, "recall@10": 1, "recall@100": 1, "mrr@10": 1}, query_metrics([], {"a": 1})]
    ) == {
        "ndcg@10": 0.5,
        "recall@10": 0.5,
        "recall@100": 0.5,
        "mrr@10": 0.5,
    }


def test_squad_converts_to_beir_with_each_question_judged_on_its_paragraph(tmp_path: Path) -> None:
    squad = {
        "data": [
            {
                "title": "Super_Bowl_50",
                "paragraphs": [
                    {"context": "Denver won.", "qas": [{"id": "q1", "question": " Who won? "}]},
                    {"context": "It was in Santa Clara.", "qas": [{"id": "q2", "question": "Where?"}]},
                ],
            },
            {
                "title": "Warsaw",
                "paragraphs": [{"context": "Warsaw is a city.", "qas": [{"id": "q3", "question": "What?"}]}],
            },
        ]
    }
    assert squad_to_beir(squad, tmp_path / "all") == (3, 3)
    data = load_beir(tmp_path / "all")
    assert data.corpus[0] == CorpusDoc("0-0", "Super Bowl 50", "Denver won.")
    assert data.queries["q1"] == "Who won?"
    assert data.qrels == {"q1": {"0-0": 1}, "q2": {"0-1": 1}, "q3": {"1-0": 1}}
    assert squad_to_beir(squad, tmp_path / "two", paragraphs=2) == (2, 2)


def test_halueval_dedupes_knowledge(tmp_path: Path) -> None:
    lines = [
        {"knowledge": "K one.", "question": "Q1?"},
        {"knowledge": "K one.", "question": "Q2?"},
        {"knowledge": "K two.", "question": "Q3?"},
    ]
    assert halueval_to_beir(lines, tmp_path) == (2, 3)
    data = load_beir(tmp_path)
    assert data.qrels["q0"] == data.qrels["q1"] != data.qrels["q2"]


_FAQ_PAGE = """<html><head><title>General Python FAQ &#8212; Python 3.11.2 documentation</title></head><body>
<div class="sphinxsidebar"><h3>Navigation</h3></div>
<section id="general-python-faq"><h1>General Python FAQ</h1>
<section id="general-information"><h2>General Information</h2>
<section id="what-is-python"><h3><a href="#id4">What is Python?</a><a class="headerlink" href="#w">¶</a></h3>
<p>Python is an interpreted, interactive,   object-oriented programming language.</p>
<ul><li>It incorporates modules and exceptions.</li></ul></section>
<section id="short"><h3>Why strange results?</h3><p>See the next question.</p></section>
</section></section></body></html>"""


def test_the_python_faq_converts_each_question_heading_to_a_query_judged_on_its_section(tmp_path: Path) -> None:
    page = tmp_path / "general.html"
    page.write_text(_FAQ_PAGE, encoding="utf-8")
    assert python_faq_to_beir([page], tmp_path / "faq") == (1, 1)
    dataset = load_beir(tmp_path / "faq")
    assert dataset.queries == {"general#what-is-python": "What is Python?"}
    [doc] = dataset.corpus
    assert doc.title == "General Python FAQ"
    assert doc.text == (
        "Python is an interpreted, interactive, object-oriented programming language.\n"
        "It incorporates modules and exceptions."
    )
    assert "What is Python" not in doc.text
    assert dataset.qrels == {"general#what-is-python": {"general#what-is-python": 1}}


def test_the_debian_docs_set_keeps_the_questions_whose_pages_are_all_in_the_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "postgresql").mkdir(parents=True)
    (corpus / "nodejs").mkdir()
    (corpus / "postgresql" / "empty.html").write_text("", encoding="utf-8")
    (corpus / "postgresql" / "sql-truncate.html").write_text(
        "<html><head><title>TRUNCATE — café</title><style>p {}</style></head><body><h1>TRUNCATE</h1>"
        "<p>TRUNCATE quickly removes\nall rows from a set of tables.</p><script>x()</script></body></html>",
        encoding="utf-8",
    )
    (corpus / "nodejs" / "path.md").write_text("# Path\n\nThe `node:path` module.\n", encoding="utf-8")
    (corpus / ".manifest.json").write_text("{}", encoding="utf-8")
    (corpus / "reference.pdf").write_bytes(b"%PDF-1.4")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        '{"_id": "d1", "text": "How do I empty a table fast?", "relevant": ["postgresql/sql-truncate.html"]}\n'
        '{"_id": "d2", "text": "Join paths?", "relevant": ["nodejs/path.md", "python/library/os.path.html"]}\n'
        '{"_id": "d3", "text": "Node paths?", "relevant": ["nodejs/path.md"]}\n',
        encoding="utf-8",
    )
    assert debian_docs_to_beir(corpus, tmp_path / "out", questions) == (3, 2)
    dataset = load_beir(tmp_path / "out")
    docs = {d.id: d for d in dataset.corpus}
    assert set(docs) == {"postgresql/sql-truncate.html", "postgresql/empty.html", "nodejs/path.md"}  # no PDF
    truncate = docs["postgresql/sql-truncate.html"]
    assert truncate.title == "TRUNCATE — café"  # UTF-8 without a charset declaration
    assert truncate.text == "TRUNCATE\nTRUNCATE quickly removes all rows from a set of tables."
    assert docs["nodejs/path.md"].title == "Path"
    assert dataset.queries == {"d1": "How do I empty a table fast?", "d3": "Node paths?"}  # d2's other page is gone
    assert dataset.qrels["d1"] == {"postgresql/sql-truncate.html": 1}
    with pytest.raises(SourcebookError, match="no documentation files"):
        debian_docs_to_beir(tmp_path / "empty", tmp_path / "x", questions)


def test_the_committed_debian_docs_questions_are_hand_written_with_their_pages() -> None:
    import json

    items = [json.loads(line) for line in DEBIAN_DOCS_QUESTIONS.read_text(encoding="utf-8").splitlines()]
    assert len(items) >= 100
    assert len({i["_id"] for i in items}) == len(items)
    assert all(i["text"].endswith("?") and i["relevant"] for i in items)
    folders = {r.split("/")[0] for i in items for r in i["relevant"]}
    assert folders == {"postgresql", "python", "nodejs", "debian-policy"}


def test_a_broken_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourcebookError, match="not a BEIR dataset"):
        load_beir(tmp_path)
    write_beir(tmp_path, [CorpusDoc("d1", "", "text")], {"q1": "?"}, {"q1": "d9"})
    with pytest.raises(SourcebookError, match="not in the corpus"):
        load_beir(tmp_path)
    (tmp_path / "corpus.jsonl").write_text("{not json\n")
    with pytest.raises(SourcebookError, match=r"corpus\.jsonl:1 is not valid JSON"):
        load_beir(tmp_path)


def test_report_has_a_table_and_a_chart_per_metric() -> None:
    metrics = {"ndcg@10": 0.5, "recall@10": 0.6, "recall@100": 0.9, "mrr@10": 0.4}
    summary = {
        "dataset": "d",
        "queries": 3,
        "documents": 2,
        "chunks": 2,
        "settings": {},
        "modes": {"bm25": {"metrics": metrics, "latency_ms": {"p50": 1.0, "p95": 2.0}}},
        "regressions": ["bm25 ndcg@10 0.5 < baseline 0.7 - 0.01"],
    }
    md = report.markdown(summary)
    assert "| bm25 | 0.5000 | 0.6000 | 0.9000 | 0.4000 | 1.0 | 2.0 |" in md
    assert "**regression**" in md
    page = report.html_page(summary, {"bm25": {"ndcg@10": 0.7}})
    assert page.count("<svg") == 4


def test_the_gate_names_each_metric_below_its_baseline_by_more_than_the_tolerance() -> None:
    from evals.retrieval import ModeRun, gate

    metrics = {"ndcg@10": 0.80, "recall@10": 0.90, "recall@100": 0.99, "mrr@10": 0.70}
    runs = {"hybrid": ModeRun(metrics, {"p50": 1.0, "p95": 2.0}, {})}
    assert gate(runs, {}, 0.01) == []
    assert gate(runs, {"hybrid": {"ndcg@10": 0.805, "mrr@10": 0.70}}, 0.01) == []  # within the tolerance
    assert gate(runs, {"hybrid": {"ndcg@10": 0.85, "mrr@10": 0.69}, "bm25": {"ndcg@10": 1.0}}, 0.01) == [
        "hybrid ndcg@10 0.8000 < baseline 0.8500 - 0.01"
    ]
    assert gate(runs, {"hybrid": {"not-a-metric": 2.0}}, 0.0) == []
