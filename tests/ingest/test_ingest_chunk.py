"""Chunking sized in MiniLM's own tokens: limits, context lines, heading paths, tables split with their header."""

from __future__ import annotations

import pytest

from ingest.chunk import context_line, render_row
from ingest.detect import Limits, sniff
from ingest.parse import parse
from ingest.types import Element, ParsedDocument
from tests.ingest_helpers import SAMPLES, chunker, minilm_counter

pytestmark = pytest.mark.unit
MAX_SEQ = 256


def _doc(*elements: Element) -> ParsedDocument:
    return ParsedDocument("Handbook", "text/markdown", elements)


def _tokens(text: str) -> int:
    return len(minilm_counter()(text))


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.iterdir() if not p.name.endswith(".json")))
def test_every_sample_chunk_fits_the_model_with_its_context(name: str) -> None:
    path = SAMPLES / name
    doc = parse(path, sniff(path, Limits(2**30, 2**30)))
    chunks = chunker().chunk(doc, doc.title)
    assert chunks
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.token_count == _tokens(chunk.embed_text)
        assert chunk.token_count <= MAX_SEQ - 2, (name, chunk.context, chunk.token_count)
        assert chunk.context.startswith(doc.title)
        assert chunk.text.strip()


def test_heading_path_and_context_follow_the_structure() -> None:
    doc = _doc(
        Element("title", "Handbook", depth=0),
        Element("title", "Travel", depth=1),
        Element("text", "Book trips in Waypoint."),
        Element("title", "Hotels", depth=2),
        Element("list", "The cap is USD 220 per night."),
        Element("title", "Security", depth=1),
        Element("text", "Use a password manager."),
    )
    chunks = chunker().chunk(doc, "Handbook")
    assert [(c.heading_path, c.context, c.text) for c in chunks] == [
        (("Handbook", "Travel"), "Handbook > Travel", "Book trips in Waypoint."),
        (("Handbook", "Travel", "Hotels"), "Handbook > Travel > Hotels", "- The cap is USD 220 per night."),
        (("Handbook", "Security"), "Handbook > Security", "Use a password manager."),
    ]
    assert chunks[0].embed_text == "Handbook > Travel\n\nBook trips in Waypoint."


def test_long_text_is_split_with_overlap_within_the_target() -> None:
    sentences = [f"Rule {i} says that expense claim number {i} must be filed within thirty days." for i in range(80)]
    chunks = chunker(target=120, overlap=20).chunk(_doc(Element("text", " ".join(sentences))), "Handbook")
    assert len(chunks) > 3
    assert all(_tokens(c.text) <= 120 for c in chunks)
    joined = " ".join(c.text for c in chunks)
    assert all(s in joined for s in sentences)
    first_words = chunks[1].text.split()[:3]
    assert " ".join(first_words) in chunks[0].text, "consecutive chunks overlap"


def test_a_small_table_is_one_chunk() -> None:
    rows = (("City", "Cap"), ("Chicago", "260"), ("Austin", "200"))
    [chunk] = chunker().chunk(_doc(Element("table", "", page=3, rows=rows)), "Rates")
    assert chunk.kind == "table"
    assert chunk.page == 3
    assert chunk.text == "| City | Cap |\n| Chicago | 260 |\n| Austin | 200 |"


def test_a_large_table_repeats_its_header_in_every_piece() -> None:
    header = ("City", "Country", "Lodging cap (USD per night)", "Meals (USD per day)")
    rows = (header, *((f"City number {i}", "Somewhere", str(150 + i), str(60 + i)) for i in range(120)))
    chunks = chunker().chunk(_doc(Element("table", "", rows=rows)), "Per diem rates")
    assert len(chunks) > 3
    assert all(c.text.splitlines()[0] == render_row(header) for c in chunks)
    body_rows = [line for c in chunks for line in c.text.splitlines()[1:]]
    assert body_rows == [render_row(r) for r in rows[1:]], "every row once, in order"
    assert all(c.token_count <= MAX_SEQ - 2 for c in chunks)


def test_a_table_row_longer_than_the_budget_is_split_under_its_header() -> None:
    long_cell = " ".join(["word"] * 600)
    chunks = chunker().chunk(_doc(Element("table", "", rows=(("Term", "Definition"), ("x", long_cell)))), "Glossary")
    assert len(chunks) > 1
    assert all(c.text.startswith("| Term | Definition |\n") for c in chunks)
    assert all(c.token_count <= MAX_SEQ - 2 for c in chunks)


def test_page_changes_start_a_new_chunk_so_pages_stay_right() -> None:
    doc = _doc(Element("text", "first page text", page=1), Element("text", "second page text", page=2))
    assert [(c.page, c.text) for c in chunker().chunk(doc, "Doc")] == [(1, "first page text"), (2, "second page text")]


def test_headings_without_body_make_no_chunk() -> None:
    doc = _doc(Element("title", "Empty section", depth=0), Element("title", "Next", depth=0), Element("text", "Body."))
    assert [c.context for c in chunker().chunk(doc, "Doc")] == ["Doc > Next"]


def test_context_line_skips_a_repeated_title() -> None:
    assert context_line("Handbook", ["Handbook", "Travel"]) == "Handbook > Travel"
    assert context_line("Handbook", []) == "Handbook"
    assert render_row(["a|b", "c"]) == "| a/b | c |"
