"""The judge-free metrics of one answer, the bootstrap intervals, the paired comparison and the gate,
and the set builders of SQuAD, HaluEval and abstention items."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from answer.prompts import ABSTAIN
from answer.types import Source
from evals import sources, stats
from evals.answers import Scored, item_scores
from evals.goldens import GoldenItem
from evals.text import token_f1

pytestmark = pytest.mark.unit

VALUE = GoldenItem("v", "When did the Lisbon office open?", reference_answer="1987")
CONTEXT = "The Lisbon office opened in 1987. It has forty desks, a library, a canteen and a roof garden."
CHUNKS = GoldenItem("c", "How many desks?", reference_answer="forty", reference_chunk_ids=(7, 9))
NONE = GoldenItem("n", "Who won the 1966 World Cup?", must_abstain=True)


def _source(number: int, text: str, chunk_ids: tuple[int, ...] = (1,)) -> Source:
    return Source(number, chunk_ids[0], chunk_ids, uuid.uuid4(), "Office", "file:///o.md", None, text, 1.0)


def test_token_f1_is_squads() -> None:
    assert token_f1("The office opened in 1987", "1987") == pytest.approx(0.4)  # "the" dropped: P 1/4, R 1
    assert token_f1("nothing shared", "1987") == 0.0
    assert token_f1("An Apple", "apple") == 1.0


def test_item_scores_of_a_cited_right_answer() -> None:
    cited = [_source(1, CONTEXT), _source(2, "The canteen serves lunch.")]
    scores = item_scores(VALUE, "It opened in 1987 [1].", cited, result="correct", abstained=False, flagged=False)
    assert scores["correct"] == 1.0
    assert scores["exact_match"] == 0.0
    assert scores["contains_reference"] == 1.0
    assert scores["citation_precision"] == 0.5  # one of the two cited passages holds the reference
    assert scores["citation_recall"] == 1.0
    assert scores["abstention_precision"] is None  # it did not abstain
    assert scores["right_abstention"] is None
    assert scores["flagged"] == 0.0


def test_citations_are_scored_by_chunk_id_when_the_item_names_chunks() -> None:
    cited = [_source(1, "forty desks", (7, 8)), _source(2, "other", (3,))]
    scores = item_scores(CHUNKS, "Forty [1][2].", cited, result="correct", abstained=False, flagged=True)
    assert (scores["citation_precision"], scores["citation_recall"]) == (0.5, 0.5)
    assert scores["flagged"] == 1.0


def test_abstention_scores() -> None:
    right = item_scores(NONE, ABSTAIN, [], result="right_abstention", abstained=True, flagged=False)
    assert (right["abstention_precision"], right["abstention_recall"], right["right_abstention"]) == (1.0, 1.0, 1.0)
    false = item_scores(VALUE, ABSTAIN, [], result="false_abstention", abstained=True, flagged=False)
    assert (false["abstention_precision"], false["abstention_recall"]) == (0.0, None)
    assert false["false_abstention"] == 1.0
    assert false["citation_precision"] is None  # nothing cited: precision has no denominator
    assert false["citation_recall"] == 0.0


def _scored(item_id: str, **scores: float | None) -> Scored:
    return Scored(item_id, "correct", False, True, True, "a", (1,), "answer", "m", 100.0, None, scores=dict(scores))


def test_estimates_are_means_over_the_items_a_metric_applies_to_with_a_seeded_interval() -> None:
    runs = [_scored(str(n), correct=float(n % 2), right_abstention=None) for n in range(40)]
    estimate = stats.estimate(runs, "correct")
    assert (estimate.mean, estimate.n) == (0.5, 40)
    assert estimate.low is not None
    assert estimate.high is not None
    assert 0.3 < estimate.low < 0.5 < estimate.high < 0.7
    assert stats.estimate(runs, "correct") == estimate  # seeded: the same interval every time
    assert stats.estimate(runs, "right_abstention") == stats.Estimate(None, None, None, 0)


def test_an_unchanged_run_is_no_regression_and_a_real_drop_is() -> None:
    base = [_scored(str(n), correct=float(n % 2), false_abstention=0.0) for n in range(30)]
    same = stats.paired(base, base, "correct")
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)
    assert stats.regressions(base, base, tolerance=0.02) == []
    worse = [_scored(str(n), correct=0.0, false_abstention=float(n % 2)) for n in range(30)]
    found = stats.regressions(base, worse, tolerance=0.02)
    assert [line.split(":")[0] for line in found] == ["correct", "false_abstention"]
    one_flip = [_scored("0", correct=1.0, false_abstention=0.0), *base[1:]]
    assert stats.regressions(one_flip, base, tolerance=0.02) == []  # one item is noise: the interval holds 0


def test_the_items_that_changed_most_come_first() -> None:
    a = [_scored("x", correct=1.0, token_f1=1.0), _scored("y", correct=1.0), _scored("z", correct=0.0)]
    b = [_scored("x", correct=0.0, token_f1=0.0), _scored("y", correct=1.0), _scored("z", correct=1.0)]
    assert [(left.id, delta) for left, _, delta in stats.most_changed(a, b, top=5)] == [("x", 2.0), ("z", 1.0)]


def test_scored_round_trips_through_json() -> None:
    scored = Scored(
        "x",
        "correct",
        False,
        True,
        True,
        "It was 1987 [1].",
        (1,),
        "answer",
        "m",
        10.0,
        2.0,
        ("t",),
        question="When?",
        flagged=True,
        cited_chunk_ids=(4, 5),
        answer_id=uuid.uuid4(),
        scores={"correct": 1.0},
    )
    assert Scored.from_json(json.loads(json.dumps(scored.to_json()))) == scored


def test_squad_and_halueval_sets_write_their_corpus_and_abstentions_come_from_another_set(tmp_path: Path) -> None:
    squad = {
        "data": [
            {
                "title": "Lisbon_Office",
                "paragraphs": [
                    {
                        "context": CONTEXT,
                        "qas": [{"id": "q1", "question": "When did it open?", "answers": [{"text": "1987"}]}],
                    },
                    {"context": "No questions here.", "qas": []},
                ],
            }
        ]
    }
    made = sources.squad_set(squad, tmp_path / "squad", name="s", limit=None, seed=1)
    assert [(i.id, i.reference_answer, i.reference_contexts) for i in made.items] == [("q1", "1987", (CONTEXT,))]
    assert sorted(p.name for p in (tmp_path / "squad").iterdir()) == ["Lisbon-Office-000.md", "Lisbon-Office-001.md"]
    rows = [
        {"knowledge": f"fact {n}", "question": f"q{n}?", "right_answer": f"a{n}", "hallucinated_answer": "x"}
        for n in range(10)
    ]
    halu = sources.halueval_set(rows, tmp_path / "halu", name="h", limit=3, seed=2)
    assert len(halu.items) == 3 == len(list((tmp_path / "halu").iterdir()))
    assert all(i.reference_contexts == (f"fact {i.id[-1]}",) for i in halu.items)
    mixed = sources.with_abstentions(made, halu.items, count=2, seed=1)
    assert [i.must_abstain for i in mixed.items] == [False, True, True]
    assert all(i.id.startswith("abstain/") and i.question in {h.question for h in halu.items} for i in mixed.items[1:])
