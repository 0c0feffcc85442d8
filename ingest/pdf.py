"""PDF parsing without a layout model: pdfplumber for text lines (with font sizes) and ruled tables.

unstructured's ``fast`` strategy finds no tables and its ``pdf`` extra drags in a CUDA torchvision;
``hi_res`` needs a layout model that can't be downloaded here. pdfplumber reads the drawn table grid
(header row included) and each line's font size, which is enough to tell headings from body text:
a block set noticeably larger than the page's body text is a heading.

Two things real PDFs need on top of pdfplumber's defaults (both measured on the Debian Reference):
- Word gaps scale with the font: a fixed 3 pt tolerance glues 10 pt words together ("Listofinteresting"),
  so characters are joined with a tolerance relative to their size.
- Many tables rule their rows and inner columns but not their outer sides, so pdfplumber's grid finds
  no closed cells in the first and last columns. Where stacked horizontal rules of the same extent
  have inner vertical rules between them, the missing sides are added. A "table" of one column is
  a framed code or note box, not a table: its lines stay in the text.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import defaultdict
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
# Characters closer than this share of their font size belong to the same word (a space is ~0.25 em).
_TEXT_SETTINGS: dict[str, Any] = {"x_tolerance_ratio": 0.15}
_FLAT = 0.5  # a rule thinner than this (points) is horizontal or vertical
_SNAP = 2.0  # points of slack when comparing rule positions


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
    for row in table.extract(**_TEXT_SETTINGS):
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


def _horizontal_spans(rules: list[dict[str, Any]]) -> dict[tuple[int, int], list[float]]:
    """Horizontal rules merged per height into spans, grouped by their (rounded) extent."""
    per_y: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for rule in rules:
        per_y[round(rule["top"])].append((rule["x0"], rule["x1"]))
    by_extent: dict[tuple[int, int], list[float]] = defaultdict(list)
    for y, segments in sorted(per_y.items()):
        segments.sort()
        x0, x1 = segments[0]
        for a, b in segments[1:]:
            if a <= x1 + _SNAP:
                x1 = max(x1, b)
            else:
                by_extent[(round(x0), round(x1))].append(y)
                x0, x1 = a, b
        by_extent[(round(x0), round(x1))].append(y)
    return by_extent


def _missing_sides(page: Any) -> list[dict[str, Any]]:
    """Vertical edges for tables that rule rows and inner columns but leave their outer sides open."""
    horizontal = [r for r in page.lines if abs(r["top"] - r["bottom"]) < _FLAT]
    vertical = [r for r in page.lines if abs(r["x0"] - r["x1"]) < _FLAT]
    if not horizontal or not vertical:
        return []

    def inner_rule(x0: float, x1: float, top: float, bottom: float) -> bool:
        """A vertical rule strictly inside the span that covers most of the row between two rules."""
        return any(
            x0 + _SNAP < v["x0"] < x1 - _SNAP and min(v["bottom"], bottom) - max(v["top"], top) >= 0.8 * (bottom - top)
            for v in vertical
        )

    edges: list[dict[str, Any]] = []
    for (x0, x1), ys in _horizontal_spans(horizontal).items():
        for top, bottom in itertools.pairwise(ys):
            if inner_rule(x0, x1, top, bottom):
                edges.extend(
                    {
                        "object_type": "line",
                        "x0": x,
                        "x1": x,
                        "top": top,
                        "bottom": bottom,
                        "width": 0,
                        "height": bottom - top,
                    }
                    for x in (x0, x1)
                )
    return edges


def _page_elements(page: Any, number: int, body: float) -> list[Element]:
    found = page.find_tables(table_settings={"explicit_vertical_lines": _missing_sides(page)})
    tables = [t for t in found if len(t.rows) >= 2 and len(t.rows[0].cells) >= 2]
    boxes = [t.bbox for t in tables]
    lines = []
    for line in page.extract_text_lines(return_chars=True, strip=True, **_TEXT_SETTINGS):
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
