"""Real parsing of the sample documents, one format at a time, and the offline seam into unstructured."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.detect import Limits, sniff
from ingest.parse import offline_nlp, parse
from ingest.types import Element, ParsedDocument
from sourcebook.errors import ErrorCode, SourcebookError
from tests.ingest_helpers import SAMPLES, make_docx, make_pdf, make_typeset_pdf

pytestmark = pytest.mark.unit
LIMITS = Limits(100 * 2**20, 500 * 2**20)


def _parse(name: str) -> ParsedDocument:
    path = SAMPLES / name
    return parse(path, sniff(path, LIMITS))


def _kinds(doc: ParsedDocument, kind: str) -> list[Element]:
    return [e for e in doc.elements if e.kind == kind]


def _all_text(doc: ParsedDocument) -> str:
    return "\n".join([e.text for e in doc.elements] + [" | ".join(r) for e in doc.elements for r in e.rows])


def test_the_spacy_seam_is_where_we_patch_it() -> None:
    import unstructured.nlp.tokenize as tokenize

    assert hasattr(tokenize, "_get_nlp"), "unstructured moved its spaCy lookup: re-check ingest.parse.offline_nlp"
    nlp = offline_nlp()
    assert tokenize._get_nlp() is nlp
    assert nlp.pipe_names == ["sentencizer"]


def test_markdown_keeps_headings_lists_and_tables() -> None:
    doc = _parse("expense_policy_2025.md")
    assert doc.title == "Travel & Expense Policy (2025 edition)"
    assert doc.mime_type == "text/markdown"
    titles = [(e.text, e.depth) for e in _kinds(doc, "title")]
    assert titles[0] == ("Travel & Expense Policy (2025 edition)", 0)
    assert ("1. Purpose", 1) in titles
    assert _kinds(doc, "list")
    tables = _kinds(doc, "table")
    assert tables[0].rows[0] == ("Item", "Detail")
    assert "USD 220 per night" in _all_text(doc)


def test_html_tables_have_header_rows() -> None:
    doc = _parse("holiday_calendar_2025.html")
    tables = _kinds(doc, "table")
    assert len(tables) == 2
    assert all(len(t.rows[0]) == 3 for t in tables)
    assert any(row[0].startswith("Founders' Day") and "12 September 2025" in row for t in tables for row in t.rows)


def test_docx_headings_have_depths_and_tables_rows() -> None:
    doc = _parse("onboarding_handbook.docx")
    depths = {e.text: e.depth for e in _kinds(doc, "title")}
    assert depths["New Hire Onboarding Handbook"] == 0
    assert depths["Schedule"] > depths["Your first week"]
    [table] = _kinds(doc, "table")
    assert len(table.rows) > 2
    assert "9:30" in _all_text(doc)


def test_pptx_slides_are_pages_and_bullets_are_not_headings() -> None:
    doc = _parse("q3_2025_all_hands.pptx")
    assert {e.page for e in doc.elements} == set(range(1, 9))
    headings = [e.text for e in _kinds(doc, "title")]
    assert "Q3 by the numbers" in headings
    assert all(e.depth == 0 for e in _kinds(doc, "title"))
    [table] = _kinds(doc, "table")
    assert table.rows[0][0] == "Metric"
    assert any(row[0] == "Revenue" and "$14.2M" in row for row in table.rows)


def test_xlsx_sheets_are_tables_with_header_rows() -> None:
    doc = _parse("price_list_2025.xlsx")
    tables = _kinds(doc, "table")
    assert len(tables) == 3
    assert tables[0].rows[0][0] == "SKU"
    assert any(row[0] == "RL-CONN-SAP" and "4800" in row for row in tables[0].rows)
    assert [t.page for t in tables] == [1, 2, 3]


def test_email_gets_its_subject_and_header_lines() -> None:
    doc = _parse("expense_policy_update_thread.eml")
    assert "Travel & Expense Policy" in doc.title
    assert doc.elements[0].text.startswith("From: ")
    assert "Transition rule" in _all_text(doc)
    assert not _kinds(doc, "title"), "signature lines in e-mail are not headings"


def test_plain_text() -> None:
    doc = _parse("it_support_contacts.txt")
    assert "x4357" in _all_text(doc)
    assert doc.mime_type == "text/plain"


def test_pdf_text_headings_pages_and_tables_with_header() -> None:
    doc = _parse("per_diem_rates_2025.pdf")
    assert doc.title == "Per Diem Rates 2025"
    assert {e.page for e in doc.elements} == {1, 2}
    assert "1. How per diems work" in [e.text for e in _kinds(doc, "title")]
    [table] = _kinds(doc, "table")
    assert table.rows[0][:2] == ("City", "Country")
    assert any(row[0].startswith("Chicago") and "86" in row for row in table.rows)
    assert len(table.rows) == 14
    assert not any("(cid:" in e.text for e in doc.elements)


def test_non_utf8_text_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "legacy.txt"
    path.write_bytes("Le café sert une crème brûlée; les employés préfèrent la tarte, prix: 7 €.".encode("cp1252"))
    assert "crème brûlée" in _all_text(parse(path, sniff(path, LIMITS)))


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nendobj\n", "could not parse this PDF"),
        ("blank.md", b"   \n\n  \n", "no text found"),
    ],
)
def test_unparseable_files_fail_clearly(tmp_path: Path, name: str, content: bytes, fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourcebookError, match=fragment) as info:
        parse(path, sniff(path, LIMITS))
    assert info.value.code is ErrorCode.INVALID_REQUEST


def test_pdf_typeset_words_open_sided_tables_and_code_boxes(tmp_path: Path) -> None:
    elements = parse(make_typeset_pdf(tmp_path / "reference.pdf"), "pdf").elements
    tables = [e for e in elements if e.kind == "table"]
    assert [t.rows for t in tables] == [
        (("package", "popcon", "description"), ("mc", "V:54", "file manager"), ("vim", "V:97", "text editor"))
    ]
    text = [e.text for e in elements if e.kind != "table"]
    assert "List of interesting text-mode packages" in text
    assert "Table 1.1: Interesting packages" in text
    assert "# apt-get install mc" in text  # the framed box stays text, not a one-column table


def test_a_password_protected_pdf_says_so(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "secret.pdf", ["Top secret salary data"], password="hunter2")
    with pytest.raises(SourcebookError, match="password-protected"):
        parse(path, sniff(path, LIMITS))


def test_a_generated_pdf_and_docx_parse(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "memo.pdf", ["Quarterly memo", "The cafeteria opens at 8:15 on weekdays."])
    assert "8:15" in _all_text(parse(pdf, "pdf"))
    docx = make_docx(tmp_path / "memo.docx", ["The parking garage closes at 22:00."])
    assert "22:00" in _all_text(parse(docx, sniff(docx, LIMITS)))


def test_a_file_that_vanished_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(SourcebookError) as info:
        parse(tmp_path / "gone.md", "md")
    assert info.value.code is ErrorCode.NOT_FOUND


MANUAL_PAGE = """<!DOCTYPE html><html><head><title>Travel FAQ — Example Corp handbook</title>
<script>var tracking = "Why is the sky blue?";</script></head><body>
<div class="related" role="navigation"><h3>Navigation</h3><ul><li><a href="#">index</a></li></ul></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><ul>
<li>How much may a hotel night cost?</li><li>Who books trains?</li></ul></div>
<div class="body" role="main">
<section id="travel"><h1>Travel FAQ<a class="headerlink" href="#travel">¶</a></h1>
<section id="hotel"><h2>How much may a hotel night cost?<a class="headerlink" href="#hotel">¶</a></h2>
<p>A hotel night may cost at most EUR 160 in Europe.</p></section>
<section id="trains"><h2>Who books trains?<a class="headerlink" href="#trains">#</a></h2>
<p>The travel desk books trains two weeks ahead.</p></section></section></div>
<footer role="contentinfo">© Example Corp. Last updated 2025.</footer>
</body></html>"""


def test_html_keeps_the_page_content_and_drops_its_furniture(tmp_path: Path) -> None:
    path = tmp_path / "travel.html"
    path.write_text(MANUAL_PAGE, encoding="utf-8")
    doc = parse(path, "html")
    text = _all_text(doc)
    # The sidebar's table of contents repeated every question: it outranked the sections in search.
    assert text.count("How much may a hotel night cost?") == 1
    for furniture in ("Navigation", "Table of Contents", "index", "Last updated", "tracking", "¶"):
        assert furniture not in text
    assert [e.text for e in _kinds(doc, "title")] == [
        "Travel FAQ",
        "How much may a hotel night cost?",
        "Who books trains?",
    ]
    assert doc.title == "Travel FAQ"
    assert "EUR 160" in text
    assert "two weeks ahead" in text


def test_html_without_a_main_element_or_headings_still_drops_menus_and_keeps_its_title(tmp_path: Path) -> None:
    path = tmp_path / "note.html"
    path.write_text(
        "<html><head><title>Parking note</title></head><body><nav><a href='/'>Home</a> <a href='/x'>Menu</a></nav>"
        "<p>Visitors park on level 2 of the garage.</p><aside>Related: canteen hours</aside></body></html>",
        encoding="utf-8",
    )
    doc = parse(path, "html")
    assert _all_text(doc) == "Visitors park on level 2 of the garage."
    assert doc.title == "Parking note"
