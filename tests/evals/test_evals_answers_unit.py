"""Answer dev sets and judge-free answer scoring: the counterfactual swaps, the set format, the scores."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from evals.answers import Scored, score, summarize
from evals.counterfactual import (
    Swap,
    kind_of,
    name_parts,
    name_pool,
    occurs,
    replace_everywhere,
    standalone,
    swapped_value,
    wh_word,
)
from evals.goldens import (
    GoldenItem,
    GoldenSet,
    _Asked,
    _swapped,
    faq_sets,
    halueval_counterfactual_sets,
    read_set,
    squad_sets,
    write_set,
)
from evals.text import contains, holds, normalize
from sourcebook.errors import SourcebookError

pytestmark = pytest.mark.unit

ABSTAIN = "The documents don't say."


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("1995", "year"),
        ("February 7, 2016", "date"),
        ("22,000", "number"),
        ("86", "number"),
        ("8", None),  # one digit: too common to swap everywhere
        ("Denver Broncos", "name"),
        ("University of Chicago", "name"),
        ("the Broncos", None),
        ("Santa Clara, California", None),
        ("golden anniversary", None),
    ],
)
def test_kind_of(answer: str, kind: str | None) -> None:
    assert kind_of(answer) == kind


def test_swapped_values_keep_their_kind_and_differ() -> None:
    rng = random.Random(3)
    for _ in range(50):
        year = swapped_value("year", "1995", [], rng)
        assert year is not None
        assert kind_of(year) == "year"
        assert year != "1995"
        number = swapped_value("number", "22,000", [], rng)
        assert number is not None
        assert kind_of(number) == "number"
        assert number != "22,000"
        assert "," in number
        date = swapped_value("date", "February 7, 2016", [], rng)
        assert date is not None
        assert kind_of(date) == "date"
        assert not date.startswith("February")
    assert swapped_value("name", "Denver Broncos", ["Chicago Bulls", "Paris", "Denver Broncos"], rng) == "Chicago Bulls"
    assert swapped_value("name", "Denver Broncos", ["Paris"], rng) is None


def test_replacement_takes_whole_values_only() -> None:
    texts = {"a": "In 1995, 19950 people came; 1995.5 is not a year. 1995 ended.", "b": "Nothing here."}
    out = replace_everywhere(texts, [Swap("1995", "1987", "year")])
    assert out["a"] == "In 1987, 19950 people came; 1995.5 is not a year. 1987 ended."
    assert out["b"] == "Nothing here."
    assert occurs("1987", out["a"])
    assert not occurs("1995", out["a"].replace("1995.5", ""))


def test_questions_must_stand_on_their_own() -> None:
    assert standalone("When did Genghis Khan die?")
    assert standalone("What is the team that won?")
    for question in ("Who approved of this plan?", "When did he die?", "What did they build?", "Was it big?"):
        assert not standalone(question)


def test_the_parts_of_a_name_that_would_still_point_to_it() -> None:
    assert name_parts("Johannes Agricola") == ["Johannes", "Agricola"]
    assert name_parts("University of Chicago") == ["University", "Chicago"]
    assert name_parts("Ada Byron") == ["Byron"]  # "Ada" is too short to point anywhere on its own


def test_a_swapped_name_leaves_no_part_of_itself(tmp_path: Path) -> None:
    data = _squad()
    paragraphs = data["data"][0]["paragraphs"]  # type: ignore[index]
    paragraphs.append({"context": "Benz later left Acme.", "qas": []})
    counterfactual, _ = squad_sets(data, tmp_path, articles=1, items=10, seed=1)
    assert "Carl Benz" not in {i.memory_answer for i in counterfactual.items}


def test_names_are_pooled_by_wh_word() -> None:
    assert wh_word("Who edited Tesla's autobiography?") == "who"
    assert wh_word("In which city?") == "which"
    assert wh_word("Name the river.") == "other"
    pool = name_pool([("Who won?", "Denver Broncos"), ("Where?", "Paris"), ("Who?", "a man")])
    assert pool == {"who": ["Denver Broncos"], "where": ["Paris"]}


def _squad() -> dict[str, object]:
    def article(title: str, paragraphs: list[tuple[str, list[tuple[str, str]]]]) -> dict[str, object]:
        return {
            "title": title,
            "paragraphs": [
                {
                    "context": context,
                    "qas": [{"id": f"{title}-{q}", "question": q, "answers": [{"text": a}]} for q, a in qas],
                }
                for context, qas in paragraphs
            ],
        }

    inside = article(
        "Acme",
        [
            ("Acme was founded in 1921 by Ada Byron in Leeds.", [("When was Acme founded?", "1921")]),
            ("In 1921 Acme made 340 bicycles.", [("How many bicycles did Acme make?", "340")]),
            ("Its chief engineer was Carl Benz.", [("Who was the chief engineer of Acme?", "Carl Benz")]),
        ],
    )
    outside = article(
        "Other",
        [("Grace Hopper wrote the compiler.", [("Who wrote the compiler?", "Grace Hopper"), ("Who wrote it?", "Ada")])],
    )
    return {"data": [inside, outside]}


def test_counterfactual_sets_swap_everywhere_and_keep_the_original_out(tmp_path: Path) -> None:
    counterfactual, unanswerable = squad_sets(
        _squad(), tmp_path, articles=1, items=10, seed=1
    )  # seed 1 puts "Acme" inside
    corpus = tmp_path / "corpora" / counterfactual.corpus
    texts = [p.read_text(encoding="utf-8") for p in sorted(corpus.iterdir())]
    swaps = {i.memory_answer: i.reference_answer for i in counterfactual.items}
    assert set(swaps) == {"1921", "340", "Carl Benz"}
    assert swaps["Carl Benz"] == "Grace Hopper"  # the only two-word "who" answer outside the corpus
    assert all(i.tags[0] == "counterfactual" for i in counterfactual.items)
    for item in counterfactual.items:
        assert item.reference_answer
        assert item.memory_answer
        assert any(occurs(item.reference_answer, t) for t in texts)
        assert not any(occurs(item.memory_answer, t) for t in texts)
    # The article outside the corpus supplies the names and the unanswerable questions.
    assert [i.question for i in unanswerable.items] == ["Who wrote the compiler?"]  # "it" needs its paragraph
    assert all(i.must_abstain for i in unanswerable.items)


HALUEVAL = [
    {"knowledge": k, "question": q, "right_answer": a}
    for k, q, a in [
        ("The Model T was made by Ford from 1908.", "When did Ford start the Model T?", "1908"),
        ("Benz built the Patent-Motorwagen.", "Which car did Carl Benz build?", "Patent-Motorwagen"),
        ("Grace Hopper wrote the first compiler.", "Who wrote the first compiler?", "Grace Hopper"),
        ("The bridge is 2,737 metres long.", "How long is the Golden Gate Bridge?", "2,737"),
        ("Mount Everest was first climbed in 1953.", "When was Everest first climbed?", "1953"),
        ("It was founded in 1908 too.", "Who founded 1908 Ltd?", "1908"),
        ("Ada Lovelace wrote notes.", "Who wrote the notes on the engine?", "Ada Lovelace"),
    ]
]


def test_halueval_counterfactual_sets_swap_everywhere_and_ask_only_what_the_corpus_lacks(tmp_path: Path) -> None:
    counterfactual, unanswerable = halueval_counterfactual_sets(HALUEVAL, tmp_path, documents=4, items=10, seed=2)
    corpus = tmp_path / "corpora" / counterfactual.corpus
    texts = {p.name: p.read_text(encoding="utf-8") for p in corpus.iterdir()}
    assert len(texts) == 4
    assert all(name.endswith(".txt") for name in texts), "a document is its knowledge alone, no title from the question"
    assert counterfactual.items, "seed 2 puts a swappable answer inside"
    for item in counterfactual.items:
        assert item.memory_answer is not None
        assert item.reference_answer is not None
        assert kind_of(item.reference_answer) == kind_of(item.memory_answer)
        assert any(occurs(item.reference_answer, t) for t in texts.values())
        assert not any(occurs(item.memory_answer, t) for t in texts.values())
    whole = " ".join(texts.values())
    by_question = {row["question"]: row for row in HALUEVAL}
    assert unanswerable.items
    for item in unanswerable.items:
        assert item.must_abstain
        assert not occurs(by_question[item.question]["right_answer"], whole)
        assert item.question not in {i.question for i in counterfactual.items}


def test_in_unrelated_documents_a_common_value_or_one_another_question_names_is_not_swapped() -> None:
    texts = {
        "a": "Ann Lee is an American writer born in 1950.",
        "b": "Bo Chan is an American painter.",
        "c": "Cy Dee is an American actor.",
        "d": "The Zeta prize of 1977 went to Ann Lee.",
    }
    asked = {
        "a": [_Asked("q1", "Which nationality is the writer Ann Lee?", "American")],
        "d": [_Asked("q2", "Who won the Zeta prize in 1977?", "Ann Lee")],
    }
    pool = {"who": ["Max Roe", "Ida Park"], "which": ["Finnish", "Dutch"]}
    garbled, _ = _swapped(texts, asked, pool, items=5, rng=random.Random(1))
    assert {item.memory_answer for item in garbled} == {"American", "Ann Lee"}  # "an Dutch painter", no "Ann Lee"
    kept, swapped = _swapped(texts, asked, pool, items=5, rng=random.Random(1), max_documents=2)
    assert kept == []
    assert swapped == texts


FAQ_PAGE = """<html><head><title>General FAQ — Python docs</title></head><body>
<section id="what-is-it"><h2>What is it?¶</h2><p>It is a programming language with modules, exceptions
and dynamic typing, very high level dynamic data types, and classes.</p></section>
<section id="short"><h3>Short?</h3><p>See below.</p></section>
</body></html>"""


def test_faq_sets_hold_pages_out_and_round_trip(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "general.html").write_text(FAQ_PAGE, encoding="utf-8")
    (pages / "windows.html").write_text(FAQ_PAGE.replace("what-is-it", "win"), encoding="utf-8")
    cross = [GoldenItem("q1", "Who wrote it?")]
    answerable, unanswerable = faq_sets(sorted(pages.iterdir()), tmp_path / "sets", cross_set=cross)
    assert [i.id for i in answerable.items] == ["general#what-is-it"]
    assert answerable.items[0].question == "What is it?"
    assert [(i.id, i.tags) for i in unanswerable.items] == [("windows#win", ("faq", "windows")), ("q1", ("cross-set",))]
    assert [p.name for p in (tmp_path / "sets" / "corpora" / "python-faq").iterdir()] == ["general.html"]
    folder = write_set(tmp_path / "sets", answerable)
    again = read_set(folder)
    assert again.items == answerable.items
    assert again.corpus == "python-faq"
    assert again.corpus_dir == tmp_path / "sets" / "corpora" / "python-faq"


def test_a_malformed_set_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourcebookError, match="not a golden set"):
        read_set(tmp_path)
    folder = write_set(tmp_path, GoldenSet("s", "c", (GoldenItem("a", "q?"),)))
    (folder / "items.jsonl").write_text('{"id": "a", "question": "q?"}\n{"question": 3}\n', encoding="utf-8")
    with pytest.raises(SourcebookError, match=r"items.jsonl:2"):
        read_set(folder)
    (folder / "set.json").write_text(json.dumps({"name": "s"}), encoding="utf-8")
    with pytest.raises(SourcebookError, match=r"set\.json"):
        read_set(folder)


def test_normalisation_and_containment() -> None:
    assert normalize("The  1,250 Denver-Broncos!") == "1250 denver broncos"
    assert contains("It had 1250 bikes [1].", "1,250")
    assert not contains("It had 12500 bikes.", "1,250")
    assert contains("They were the Denver Broncos.", "Denver Broncos")
    assert not contains("anything", "")


def test_holds_needs_most_of_the_smaller_text() -> None:
    section = "Use the pickle module to serialise objects to bytes and read them back later with load."
    assert holds(section + " Other sentences about modules and files follow here.", section)
    assert holds("The pickle module serialises objects to bytes.", section)
    assert not holds("Threads share memory and need locks around shared counters.", section)
    assert not holds("pickle", section)  # too few words to tell


VALUE = GoldenItem("v", "When?", reference_answer="1987", reference_contexts=("It was 1987.",), memory_answer="1995")
FAQ = GoldenItem(
    "f",
    "How do I serialise objects?",
    reference_contexts=("Use the pickle module to serialise objects to bytes and read them back later with load.",),
)
NONE = GoldenItem("n", "Who?", must_abstain=True)


def test_scores_of_value_items() -> None:
    shown = ["Other text entirely about nothing.", "It was 1987 when it opened."]
    assert score(VALUE, "It opened in 1987 [2].", shown, [shown[1]])[0] == "correct"
    # The right words without a cited passage that holds them are not an answer from the documents.
    assert score(VALUE, "It opened in 1987 [1].", shown, [shown[0]])[0] == "wrong"
    assert score(VALUE, "It opened in 1995 [2].", shown, [shown[1]])[0] == "from_memory"
    result, abstained, shown_holds, cited_holds = score(VALUE, ABSTAIN, shown, [])
    assert (result, abstained, shown_holds, cited_holds) == ("false_abstention", True, True, False)


def test_scores_of_long_reference_and_unanswerable_items() -> None:
    passage = "To serialise objects, use the pickle module: it turns objects to bytes and load reads them back."
    answer = "Use the pickle module: it serialises objects to bytes, and load reads them back [1]."
    assert score(FAQ, answer, [passage], [passage])[0] == "correct"
    assert score(FAQ, "Python is fun and fast for many people [1].", [passage], [passage])[0] == "wrong"
    assert score(FAQ, answer, [passage], [passage], outcome="extractive")[0] == "wrong"
    assert score(VALUE, "“It was 1987.” [1]", ["It was 1987."], ["It was 1987."], outcome="extractive")[0] == "wrong"
    assert score(NONE, ABSTAIN, [passage], [])[0] == "right_abstention"
    assert score(NONE, "It was Grace [1].", [passage], [passage])[0] == "answered"


def _scored(result: str, *, shown: bool = True, ms: float = 100.0) -> Scored:
    return Scored("x", result, result.endswith("abstention"), shown, False, "", (), "answer", "m", ms, None)  # type: ignore[arg-type]


def test_summary_rates_are_over_the_items_they_apply_to() -> None:
    scored = [
        _scored("correct", ms=100),
        _scored("false_abstention", ms=200),
        _scored("from_memory", shown=False, ms=300),
        _scored("wrong", ms=400),
        _scored("right_abstention", ms=500),
        _scored("answered", ms=600),
        _scored("error", ms=1),
    ]
    summary = summarize(scored)
    assert summary["answerable"] == 5  # the error counts against the answerable ones
    assert summary["correct"] == 0.2
    assert summary["false_abstention"] == 0.2
    assert summary["from_memory"] == 0.2
    assert summary["right_abstention"] == 0.5
    assert summary["shown_holds"] == 0.8
    assert summary["correct_when_shown"] == 0.25
    assert summary["errors"] == 1
    assert summary["answer_ms"]["p50"] == 350.0
    assert summary["model"] == "m"


@pytest.mark.unit
def test_an_eval_run_waits_for_the_model_where_serving_would_fall_back(tmp_path: Path) -> None:
    """The serving first-token deadline (30 s) on a loaded CPU made 171 of 209 answers of a run extractive:
    an eval run waits longer, asks without the answer cache, and keeps a longer deadline it was given."""
    from evals.store import RunConfig
    from sourcebook.cli.eval_answers import EVAL_FIRST_TOKEN_S, answer_settings
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    updates = answer_settings(settings, RunConfig("t", prompt_version="v8", max_passages=3))
    assert settings.answer_first_token_s < EVAL_FIRST_TOKEN_S == updates["answer_first_token_s"]
    assert updates["answer_cache"] is False
    assert (updates["answer_prompt_version"], updates["answer_max_passages"]) == ("v8", 3)
    patient = make_settings(tmp_path, answer_first_token_s=900.0)
    assert answer_settings(patient, RunConfig("t"))["answer_first_token_s"] == 900.0


@pytest.mark.unit
def test_a_yes_no_reference_is_the_answers_first_word_with_a_citation() -> None:
    """No passage holds "yes": 8 of run 3's 46 wrong HaluEval answers were a right "Yes, …" scored wrong."""
    item = GoldenItem("yn", "Are Puyang and Pu'er City in the same country?", reference_answer="Yes")
    passage = "Puyang is a city in Henan, China. Pu'er City is in Yunnan, China."
    assert score(item, "Yes, both are in China. [1]", [passage], [passage])[0] == "correct"
    assert score(item, "No, they are not. [1]", [passage], [passage])[0] == "wrong"
    assert score(item, "Yes, both are in China.", [passage], [])[0] == "wrong"  # it cites nothing
    assert score(item, "Puyang is in China and so, yes, is Pu'er. [1]", [passage], [passage])[0] == "wrong"
    plain = GoldenItem("v", "Where is Puyang?", reference_answer="Henan")
    assert score(plain, "Yes. [1]", [passage], [passage])[0] == "wrong"
