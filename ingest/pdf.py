"""PDF parsing without a layout model: pdfplumber for text lines (with font sizes) and ruled tables.

unstructured's ``fast`` strategy finds no tables and its ``pdf`` extra drags in a CUDA torchvision;
``hi_res`` needs a layout model that can't be downloaded here. pdfplumber reads the drawn table grid
(header row included) and each line's font size, which is enough to tell headings from body text:
a block set noticeably larger than the page's body text is a heading.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.types import Element
from sourcebook.errors import ErrorCode, SourcebookError

_HEADING_RATIO = 1.12
_MAX_HEADING_WORDS = 16
_LIST_RE = re.compile(r"^\s*(?:[•▪◦‣∙·*–-]|\d{1,3}[.)]|[a-z][.)])\s+")
# Glyphs without a Unicode mapping (bullets, usually) come out of pdfminer as "(cid:NNN)".
_CID_RE = re.compile(r"\(cid:\d+\)")


def _password_protected(exc: BaseException) -> bool:
    """pdfplumber wraps pdfminer's errors (as the cause, or as the first argument): look down the chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if "Password" in type(seen).__name__ or "Encrypt" in type(seen).__name__:
            return True
        following = seen.__cause__ or seen.__context__
        if following is None and seen.args and isinstance(seen.args[0], BaseException):
            following = seen.args[0]
        seen = following
    return False


def _inside(line: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    x0, top, x1, bottom = box
    return bool(
        line["top"] >= top - 1 and line["bottom"] <= bottom + 1 and line["x0"] >= x0 - 1 and line["x1"] <= x1 + 1
    )


def _line_size(line: dict[str, Any]) -> float:
    sizes = [c["size"] for c in line.get("chars", []) if c.get("text", "").strip()]
    return statistics.median(sizes) if sizes else 0.0


def _table_rows(table: Any) -> tuple[tuple[str, ...], ...]:
    rows = []
    for row in table.extract():
        cells = tuple(" ".join((cell or "").split()) for cell in row)
        if any(cells):
            rows.append(cells)
    return tuple(rows)


def _blocks(lines: list[dict[str, Any]]) -> Iterator[tuple[float, list[dict[str, Any]]]]:
    """Consecutive lines of the same size, split at paragraph gaps."""
    block: list[dict[str, Any]] = []
    for line in lines:
        if block:
            prev = block[-1]
            height = max(prev["bottom"] - prev["top"], 1.0)
            gap = line["top"] - prev["bottom"]
            if gap > 0.6 * height or abs(_line_size(line) - _line_size(prev)) > 0.5 or _LIST_RE.match(line["text"]):
                yield block[0]["top"], block
                block = []
        block.append(line)
    if block:
        yield block[0]["top"], block


def _classify(block: list[dict[str, Any]], body: float, page: int) -> Element:
    text = " ".join(line["text"].strip() for line in block)
    size = _line_size(block[0])
    if body and size >= body * _HEADING_RATIO and len(text.split()) <= _MAX_HEADING_WORDS:
        depth = 0 if size >= body * 1.6 else 1 if size >= body * 1.3 else 2
        return Element("title", text, page, depth=depth)
    if _LIST_RE.match(text):
        return Element("list", _LIST_RE.sub("", text, count=1), page)
    return Element("text", text, page)


def _page_elements(page: Any, number: int, body: float) -> list[Element]:
    tables = [t for t in page.find_tables() if len(t.rows) >= 2]
    boxes = [t.bbox for t in tables]
    lines = []
    for line in page.extract_text_lines(return_chars=True, strip=True):
        line["text"] = _CID_RE.sub("•", line["text"]).strip()
        if line["text"] and not any(_inside(line, b) for b in boxes):
            lines.append(line)
    items: list[tuple[float, Element]] = [(top, _classify(block, body, number)) for top, block in _blocks(lines)]
    for table in tables:
        rows = _table_rows(table)
        if rows:
            items.append((table.bbox[1], Element("table", "\n".join(" | ".join(r) for r in rows), number, rows=rows)))
    return [element for _, element in sorted(items, key=lambda item: item[0])]


def _body_size(pdf: Any) -> float:
    sizes: list[float] = []
    for page in pdf.pages[:5]:
        sizes.extend(round(c["size"], 1) for c in page.chars if c.get("text", "").strip())
    return statistics.mode(sizes) if sizes else 0.0


def parse_pdf(path: Path) -> tuple[str | None, list[Element]]:
    """The PDF's metadata title and its elements, page by page (pages are freed as they go)."""
    import pdfplumber

    try:
        pdf = pdfplumber.open(path)
    except Exception as exc:
        if _password_protected(exc):
            raise SourcebookError(
                ErrorCode.INVALID_REQUEST,
                "the PDF is password-protected",
                hint="remove the password (or export an unprotected copy) and ingest again",
            ) from exc
        raise
    with pdf:
        if getattr(pdf.doc, "encryption", None) and not pdf.pages:
            raise SourcebookError(ErrorCode.INVALID_REQUEST, "the PDF is password-protected")
        title = (pdf.metadata or {}).get("Title")
        body = _body_size(pdf)
        elements: list[Element] = []
        for number, page in enumerate(pdf.pages, start=1):
            elements.extend(_page_elements(page, number, body))
            page.close()
    return (title.strip() if isinstance(title, str) and title.strip() else None), elements
