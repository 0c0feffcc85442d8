"""Parsing with unstructured: one ``partition_*`` per type, converted into Sourcebook ``Element``s.

Offline rules (DESIGN.md §5): unstructured 0.27 fetches spaCy's ``en_core_web_sm`` from GitHub on
first use; we hand it a blank English pipeline with a sentencizer instead, through the module-level
lookup ``unstructured.nlp.tokenize._get_nlp`` (a private seam: the version is pinned and a test
checks it). The usage ping is off through ``DO_NOT_TRACK`` (settings.library_env). PDFs go through
pdfplumber (``ingest.pdf``) unless ``pdf_strategy`` asks for unstructured's own ``fast``/``hi_res``.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from ingest.detect import MIME_TYPES, FileType, decode_text
from ingest.types import Element, ParsedDocument
from sourcebook.errors import ErrorCode, SourcebookError

PdfStrategy = Literal["auto", "fast", "hi_res"]
# Formats whose headings are real structure; in text and e-mail, unstructured's "Title" guesses
# (short lines, signatures) are not, so they stay text.
_STRUCTURED: frozenset[FileType] = frozenset({"docx", "html", "md", "pptx", "xlsx"})
_MAX_HEADING_WORDS = 16
# Page furniture, not content: menus, sidebars, banners, footers, search boxes. In a manual's HTML the
# sidebar's table of contents repeats every heading of the page and outranked the sections themselves.
_BOILERPLATE_TAGS = ("nav", "header", "footer", "aside", "script", "style", "noscript", "template", "form")
_BOILERPLATE_ROLES = ("navigation", "banner", "contentinfo", "complementary", "search")
_PERMALINKS = frozenset({"¶", "§", "#", "🔗"})
# unstructured detects each document's language (langdetect over the whole text) for metadata that
# Sourcebook never reads: a fifth of HTML parsing time on the benchmark corpus. [""] turns it off.
_NO_LANGUAGE_DETECTION = [""]


@functools.cache
def offline_nlp() -> Any:
    """Install the blank spaCy pipeline into unstructured (once per process) and return it."""
    import spacy
    import unstructured.nlp.tokenize as tokenize

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    setattr(tokenize, "_get_nlp", lambda: nlp)  # noqa: B010 - replacing a private function on purpose
    return nlp


def table_rows(text_as_html: str | None) -> tuple[tuple[str, ...], ...]:
    """A table's cells from unstructured's ``text_as_html``, header row first."""
    if not text_as_html:
        return ()
    from lxml import html as lxml_html

    root = lxml_html.fromstring(text_as_html)
    rows = []
    for tr in root.iter("tr"):
        cells = tuple(" ".join(cell.text_content().split()) for cell in tr if cell.tag in ("td", "th"))
        if any(cells):
            rows.append(cells)
    return tuple(rows)


def _is_heading(category: str, text: str, depth: int, kind: FileType) -> bool:
    if category != "Title" or kind not in _STRUCTURED:
        return False
    if kind == "pptx" and depth > 0:  # slide bullets come out as depth-1 "Title"s
        return False
    return len(text.split()) <= _MAX_HEADING_WORDS and not text.rstrip().endswith((".", ":", ";", ","))


def convert(raw: Iterable[Any], kind: FileType) -> list[Element]:
    """unstructured elements → ``Element``s (page breaks, headers and footers dropped)."""
    out: list[Element] = []
    for item in raw:
        category = item.category
        text = (item.text or "").strip()
        meta = item.metadata
        page = meta.page_number
        if category in {"PageBreak", "Header", "Footer", "PageNumber"}:
            continue
        if category == "Table":
            rows = table_rows(meta.text_as_html)
            if text or rows:
                out.append(Element("table", text, page, rows=rows))
            continue
        if not text:
            continue
        depth = int(meta.category_depth or 0)
        if _is_heading(category, text, depth, kind):
            out.append(Element("title", text, page, depth=depth))
        elif category == "ListItem":
            out.append(Element("list", text, page))
        else:
            out.append(Element("text", text, page))
    return out


def html_content(text: str) -> tuple[str | None, str]:
    """The page's ``<title>`` and its content as HTML: the ``<main>`` element (or ``role="main"``) when
    there is one, and never the page furniture (navigation, banners, sidebars, footers, forms)."""
    from lxml import etree
    from lxml import html as lxml_html

    try:
        root = lxml_html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None, text
    title = " ".join((root.findtext(".//title") or "").split()) or None
    roles = " or ".join(f"@role='{role}'" for role in _BOILERPLATE_ROLES)
    furniture = root.xpath(f"//*[{' or '.join(f'self::{t}' for t in _BOILERPLATE_TAGS)} or {roles}]")
    # Permalink anchors after headings (Sphinx's ¶, MkDocs' and GitHub's #) are not part of the heading.
    anchors = [a for a in root.iter("a") if a.text_content().strip() in _PERMALINKS]
    for element in (*furniture, *anchors):
        if element.getparent() is not None:
            element.drop_tree()
    main = root.xpath("(//main | //*[@role='main'])[1]")
    content = main[0] if main else root
    return title, lxml_html.tostring(content, encoding="unicode")


def _email_header(raw: list[Any]) -> tuple[str | None, list[Element]]:
    meta = raw[0].metadata if raw else None
    if meta is None:
        return None, []
    lines = [
        f"{label}: {', '.join(value) if isinstance(value, list) else value}"
        for label, value in (("From", meta.sent_from), ("To", meta.sent_to), ("Subject", meta.subject))
        if value
    ]
    return meta.subject, [Element("text", "\n".join(lines))] if lines else []


def _partition(path: Path, kind: FileType, pdf_strategy: PdfStrategy) -> tuple[str | None, list[Element]]:
    offline_nlp()
    if kind == "docx":
        from unstructured.partition.docx import partition_docx

        return None, convert(partition_docx(filename=str(path), languages=_NO_LANGUAGE_DETECTION), kind)
    if kind == "pptx":
        from unstructured.partition.pptx import partition_pptx

        return None, convert(partition_pptx(filename=str(path), languages=_NO_LANGUAGE_DETECTION), kind)
    if kind == "xlsx":
        from unstructured.partition.xlsx import partition_xlsx

        return None, convert(
            partition_xlsx(filename=str(path), include_header=False, languages=_NO_LANGUAGE_DETECTION), kind
        )
    if kind == "eml":
        from unstructured.partition.email import partition_email

        raw = partition_email(filename=str(path), process_attachments=False, languages=_NO_LANGUAGE_DETECTION)
        subject, header = _email_header(raw)
        return subject, header + convert(raw, kind)
    if kind == "pdf":
        if pdf_strategy == "auto":
            from ingest.pdf import parse_pdf

            return parse_pdf(path)
        return None, _partition_pdf_unstructured(path, pdf_strategy)
    text = decode_text(path.read_bytes())
    if kind == "html":
        from unstructured.partition.html import partition_html

        page_title, content = html_content(text)
        elements = convert(partition_html(text=content, languages=_NO_LANGUAGE_DETECTION), kind)
        # The first heading names the document better than a <title> that carries the site's name.
        return (None if any(e.kind == "title" for e in elements) else page_title), elements
    if kind == "md":
        from unstructured.partition.md import partition_md

        return None, convert(partition_md(text=text, languages=_NO_LANGUAGE_DETECTION), kind)
    from unstructured.partition.text import partition_text

    return None, convert(partition_text(text=text, languages=_NO_LANGUAGE_DETECTION), kind)


def _partition_pdf_unstructured(path: Path, strategy: PdfStrategy) -> list[Element]:
    try:
        from unstructured.partition.pdf import partition_pdf
    except ImportError as exc:
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            f"pdf_strategy={strategy} needs unstructured's pdf extra, which is not installed",
            hint='pip install -c constraints.txt "unstructured[pdf]", or set SOURCEBOOK_PDF_STRATEGY=auto',
        ) from exc
    # Language detection stays on here: for hi_res, `languages` is also the OCR language.
    return convert(partition_pdf(filename=str(path), strategy=strategy, infer_table_structure=True), "pdf")


def parse(path: Path, kind: FileType, *, pdf_strategy: PdfStrategy = "auto") -> ParsedDocument:
    """Parse one file of a known type; any parser failure becomes a clear ``invalid_request``."""
    try:
        title, elements = _partition(path, kind, pdf_strategy)
    except SourcebookError:
        raise
    except FileNotFoundError as exc:
        raise SourcebookError(
            ErrorCode.NOT_FOUND, "the file disappeared while it was read", hint="check the path"
        ) from exc
    except Exception as exc:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"could not parse this {kind.upper()} file: {type(exc).__name__}: {str(exc)[:200]}",
            hint="the file may be corrupt, truncated or password-protected; re-export it",
        ) from exc
    if not any(e.text.strip() or e.rows for e in elements):
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"no text found in this {kind.upper()} file",
            hint="a scanned document needs OCR before it can be ingested",
        )
    first_title = next((e.text for e in elements if e.kind == "title"), None)
    return ParsedDocument(
        title=html.unescape(title or first_title or path.stem), mime_type=MIME_TYPES[kind], elements=tuple(elements)
    )
