"""Shared helpers for the ingestion tests: the real MiniLM tokenizer and edge-case files made on the spot."""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path

from ingest.chunk import Chunker, ChunkSettings
from sourcebook.models import resolve_model

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


@functools.cache
def minilm_counter() -> functools.partial[list[int]]:
    """MiniLM's own tokenizer (the tokenizers library: fast to load, same vocabulary as the model)."""
    from tokenizers import Tokenizer

    location = resolve_model("sentence-transformers/all-MiniLM-L6-v2", offline=True)
    assert location.path is not None
    tokenizer = Tokenizer.from_file(str(location.path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return functools.partial(_ids, tokenizer)


def _ids(tokenizer: object, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]


def chunker(target: int = 200, overlap: int = 32, max_seq: int = 256) -> Chunker:
    return Chunker(minilm_counter(), ChunkSettings(max_seq, target, overlap))


def make_docx(path: Path, paragraphs: list[str]) -> Path:
    """A minimal valid DOCX built from its XML parts (no python-docx needed)."""
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships'
        '+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="word/document.xml"/></Relationships>',
        "word/document.xml": '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
        f'wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>',
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return path


def make_zip_bomb_docx(path: Path, inflated_mb: int = 64) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<w:p>" + b"A" * (inflated_mb * 2**20) + b"</w:p>")
    return path


def make_pdf(path: Path, lines: list[str], *, password: str | None = None) -> Path:
    """A small text PDF written with pypdf (a dependency of unstructured), optionally encrypted."""
    ops = io.StringIO()
    ops.write("BT /F1 11 Tf 72 720 Td 14 TL\n")
    for line in lines:
        ops.write(f"({_pdf_escape(line)}) Tj T*\n")
    ops.write("ET")
    return write_pdf(path, ops.getvalue(), password=password)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, content: str, *, password: str | None = None) -> Path:
    """A one-page PDF (Helvetica as /F1) with the given content stream, optionally encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    stream = DecodedStreamObject()
    stream.set_data(content.encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def make_typeset_pdf(path: Path) -> Path:
    """A page set the way DocBook/FOP output is: words spaced by positioning, not space characters, a
    table whose rows and inner columns are ruled but whose outer sides are open, and a framed code box.
    """

    def spaced(words: list[str]) -> str:
        # -250 thousandths of an em: a 2.5 pt gap at 10 pt, as wide as a space, with no space character.
        return "[" + " -250 ".join(f"({_pdf_escape(w)})" for w in words) + "] TJ"

    cells = [("package", "popcon", "description"), ("mc", "V:54", "file manager"), ("vim", "V:97", "text editor")]
    ops = [f"BT /F1 10 Tf 72 700 Td {spaced(['List', 'of', 'interesting', 'text-mode', 'packages'])} ET"]
    for row, values in enumerate(cells):
        baseline = 600 - 18 * row
        ops.extend(
            f"BT /F1 10 Tf {x} {baseline} Td {spaced(value.split())} ET"
            for x, value in zip((76, 176, 276), values, strict=True)
        )
    ops.extend(f"72 {y} m 472 {y} l S" for y in (612, 594, 576, 558))  # row rules, full width
    ops.extend(f"{x} 558 m {x} 612 l S" for x in (172, 272))  # inner column rules only
    ops.append(f"BT /F1 10 Tf 196 540 Td {spaced(['Table', '1.1:', 'Interesting', 'packages'])} ET")
    ops.append("72 480 400 20 re S")  # a framed code box: one column, not a table
    ops.append(f"BT /F1 9 Tf 76 486 Td {spaced(['#', 'apt-get', 'install', 'mc'])} ET")
    return write_pdf(path, "\n".join(ops))
