"""The citation state machine: markers however they are split, spelled or misused."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from answer.citations import CitationStream, best_quote, marker_numbers
from answer.types import Source

pytestmark = pytest.mark.unit


def _sources(n: int) -> list[Source]:
    return [
        Source(
            number=i,
            chunk_id=100 + i,
            chunk_ids=(100 + i,),
            document_id=uuid.UUID(int=i),
            title=f"Doc {i}",
            uri=f"file:///doc{i}.md",
            page=None,
            text=f"Passage {i} opening sentence. The office closes at {i} pm on Fridays. Parking is free.",
            score=1.0 / i,
        )
        for i in range(1, n + 1)
    ]


def run(pieces: list[str], n: int = 3) -> CitationStream:
    stream = CitationStream(_sources(n))
    emitted = [stream.feed(piece).text for piece in pieces]
    emitted.append(stream.close().text)
    assert "".join(emitted) == stream.text
    return stream


def chars(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize(
    ("answer", "expected", "cited"),
    [
        ("The office closes at 6 pm [1].", "The office closes at 6 pm [1].", [1]),
        ("Closes early [1][2].", "Closes early [1][2].", [1, 2]),
        ("Closes early [1, 2].", "Closes early [1][2].", [1, 2]),
        ("Closes early [1,2,3].", "Closes early [1][2][3].", [1, 2, 3]),
        ("Closes early [1; 3].", "Closes early [1][3].", [1, 3]),
        ("Closes early [1 and 2].", "Closes early [1][2].", [1, 2]),
        ("Closes early [1-3].", "Closes early [1][2][3].", [1, 2, 3]),
        ("Closes early [1–2].", "Closes early [1][2].", [1, 2]),
        ("Closes early [Passage 2].", "Closes early [2].", [2]),
        ("Closes early [passages 1, 2].", "Closes early [1][2].", [1, 2]),
        ("Closes early [Source #3].", "Closes early [3].", [3]),
        ("Closes early 【1】.", "Closes early [1].", [1]),
        ("Closes early [ 2 ].", "Closes early [2].", [2]),
        ("Closes early[1].", "Closes early[1].", [1]),
        ("Repeated [1] and again [1].", "Repeated [1] and again [1].", [1]),
    ],
)
def test_markers_resolve_in_one_piece_and_split_per_character(answer: str, expected: str, cited: list[int]) -> None:
    for pieces in ([answer], chars(answer)):
        stream = run(pieces)
        assert stream.text == expected
        assert sorted(stream.citations) == cited
        assert stream.dropped == []


@pytest.mark.parametrize(
    ("answer", "expected", "dropped"),
    [
        ("Closes early [9].", "Closes early.", ["[9]"]),
        ("Closes early [0].", "Closes early.", ["[0]"]),
        ("Closes early [1, 9].", "Closes early [1].", ["[1, 9]"]),
        ("Closes early [4][1].", "Closes early[1].", ["[4]"]),
        ("Closes early [10].", "Closes early.", ["[10]"]),
        ("Line one [7]\nLine two.", "Line one\nLine two.", ["[7]"]),
    ],
)
def test_markers_pointing_nowhere_are_dropped_with_their_space(answer: str, expected: str, dropped: list[str]) -> None:
    for pieces in ([answer], chars(answer)):
        stream = run(pieces)
        assert stream.text == expected
        assert stream.dropped == dropped


def test_ten_is_not_one_when_there_are_ten_passages() -> None:
    stream = run(["It says so [", "1", "0", "] and [1]."], n=10)
    assert stream.text == "It says so [10] and [1]."
    assert sorted(stream.citations) == [1, 10]


@pytest.mark.parametrize(
    "answer",
    [
        "Use `a[1]` to index.",
        "Call it:\n```python\nx = data[1]\ny = [2, 3]\n```\nDone.",
        "Double ``code [1] here`` span.",
        "Arrays like a[i] and [see below] stay.",
        "A [draft] and [docs later] stay.",
        "Nested [[ brackets ]] stay.",
        "Unclosed [1 at the end",
        "Empty [] stays.",
        "A very [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9 long list.",
    ],
)
def test_text_that_is_not_a_citation_passes_unchanged(answer: str) -> None:
    for pieces in ([answer], chars(answer)):
        stream = run(pieces)
        assert stream.text == answer
        assert stream.citations == {}


def test_markers_after_a_code_block_still_resolve() -> None:
    answer = "Run `ls [1]` first [2]. Then\n```\n[3]\n```\nas shown [3]."
    stream = run(chars(answer))
    assert stream.text == answer
    assert sorted(stream.citations) == [2, 3]
    assert stream.markers == 2


def test_backtick_runs_split_across_pieces_open_and_close_fences() -> None:
    stream = run(["Code:\n`", "``\n[1]\n`", "``\nAfter [1]."])
    assert stream.text == "Code:\n```\n[1]\n```\nAfter [1]."
    assert stream.markers == 1


def test_a_marker_held_back_is_released_as_text_at_the_end() -> None:
    stream = CitationStream(_sources(3))
    assert stream.feed("Ends with [2").text == "Ends with"
    assert stream.close().text == " [2"


def test_new_citations_are_emitted_once_with_the_piece_that_completes_them() -> None:
    stream = CitationStream(_sources(3))
    assert stream.feed("Closes at 2 pm [").citations == ()
    first = stream.feed("2]")
    assert [c.number for c in first.citations] == [2]
    assert stream.feed(" Again [2].").citations == ()


def test_quote_is_the_passage_sentence_matching_the_claim() -> None:
    stream = run(["The office closes at 2 pm on Fridays [2]."])
    assert stream.citations[2].quote == "The office closes at 2 pm on Fridays."
    assert stream.citations[2].source.chunk_id == 102


def test_marker_at_sentence_start_quotes_against_the_previous_sentence() -> None:
    stream = run(["Parking is free. [1]"])
    assert stream.citations[1].quote == "Parking is free."


def test_marker_numbers_expand_ranges_and_ignore_reversed_or_huge_ones() -> None:
    assert marker_numbers("[1-3, 5]") == [1, 2, 3, 5]
    assert marker_numbers("[3-1]") == [3]
    assert marker_numbers("[1-999]") == [1]
    assert marker_numbers("[2, 2]") == [2]


def test_best_quote_of_an_empty_passage_is_empty_and_long_sentences_are_cut() -> None:
    assert best_quote("", "anything") == ""
    quote = best_quote("word " * 200, "word")
    assert len(quote) == 300
    assert quote.endswith("…")


@given(
    st.lists(st.sampled_from(["[", "]", "1", "2", "9", ",", " ", "`", "a", ".", "\n", "[1]", "Passage"]), max_size=60)
)
def test_any_stream_only_loses_what_it_reports(pieces: list[str]) -> None:
    whole = "".join(pieces)
    split = run(pieces)
    joined = run([whole])
    assert split.text == joined.text
    kept = split.text
    for marker in split.dropped:
        assert marker not in kept or marker.strip("[]") in kept
    assert set(split.citations) <= {1, 2, 3}
    if not split.dropped and not split.citations:
        assert "".join(kept.split()) == "".join(whole.split())


def test_a_short_closing_sentence_quotes_what_the_sentence_before_it_claims() -> None:
    stream = run(["The office closes at 2 pm on Fridays. That is all [2]."])
    assert stream.citations[2].quote == "The office closes at 2 pm on Fridays."
