"""What a file is, judged by its content (the name only picks between text flavours), and whether it is safe.

Refused here, before any parser runs: empty files, files over the size limit, unknown binary types,
corrupt or truncated ZIP containers, and ZIP bombs (OOXML files whose members inflate past a limit
or by an absurd ratio).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sourcebook.errors import ErrorCode, SourcebookError

FileType = Literal["pdf", "docx", "pptx", "xlsx", "html", "md", "txt", "eml"]

MIME_TYPES: dict[FileType, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "md": "text/markdown",
    "txt": "text/plain",
    "eml": "message/rfc822",
}
_TEXT_SUFFIXES: dict[str, FileType] = {
    ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".txt": "txt", ".text": "txt",
    ".rst": "txt", ".eml": "eml", ".csv": "txt", ".log": "txt",
}  # fmt: skip
_OOXML_PARTS: dict[str, FileType] = {"word/": "docx", "ppt/": "pptx", "xl/": "xlsx"}
# Compression ratios above this are not seen in real office files (XML compresses ~5-20x).
MAX_ZIP_RATIO = 200
_SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Limits:
    max_file_bytes: int
    max_unzipped_bytes: int


def _bad(code: ErrorCode, message: str, hint: str) -> SourcebookError:
    return SourcebookError(code, message, hint=hint)


def check_zip(path: Path, limits: Limits) -> FileType:
    """The OOXML type of a ZIP container, after checking it is whole and no bomb."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = [m.filename for m in members]
            total = sum(m.file_size for m in members)
            packed = sum(m.compress_size for m in members)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _bad(ErrorCode.INVALID_REQUEST, f"corrupt or truncated file ({exc})", "re-export the file") from exc
    if total > limits.max_unzipped_bytes or (packed and total / packed > MAX_ZIP_RATIO):
        raise _bad(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"refused: the archive inflates to {total:,} bytes from {packed:,} (a ZIP bomb or an oversized file)",
            "split the document or raise SOURCEBOOK_INGEST_MAX_UNZIPPED_MB if it is genuine",
        )
    if "[Content_Types].xml" in names:
        for prefix, kind in _OOXML_PARTS.items():
            if any(name.startswith(prefix) for name in names):
                return kind
    raise _bad(
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        "a ZIP archive that is not a DOCX, PPTX or XLSX file",
        "Sourcebook reads PDF, DOCX, PPTX, XLSX, HTML, Markdown, text and e-mail (.eml)",
    )


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    control = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13, 27))
    return control <= len(head) // 100


def sniff(path: Path, limits: Limits) -> FileType:
    """The file's type, or a ``SourcebookError`` saying why it can't be ingested."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except FileNotFoundError as exc:
        raise _bad(ErrorCode.NOT_FOUND, "the file disappeared before it could be read", "check the path") from exc
    if size == 0:
        raise _bad(ErrorCode.INVALID_REQUEST, "empty file (0 bytes)", "nothing to ingest; remove or fill the file")
    if size > limits.max_file_bytes:
        raise _bad(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"file is {size / 2**20:.1f} MiB, over the {limits.max_file_bytes / 2**20:.0f} MiB limit",
            "split it, or raise SOURCEBOOK_INGEST_MAX_FILE_MB",
        )
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return check_zip(path, limits)
    by_name = _TEXT_SUFFIXES.get(path.suffix.lower())
    if _looks_like_text(head):
        lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if by_name is None and lowered.startswith((b"<!doctype html", b"<html")):
            return "html"
        if by_name is not None:
            return by_name
    raise _bad(
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"unsupported file type ({path.suffix or 'no extension'})",
        "Sourcebook reads PDF, DOCX, PPTX, XLSX, HTML, Markdown, text and e-mail (.eml)",
    )


def decode_text(data: bytes) -> str:
    """Text in its own encoding: UTF-8 (with or without BOM), else the best detected charset."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise _bad(ErrorCode.INVALID_REQUEST, "the text's encoding could not be determined", "save the file as UTF-8")
    # Single-byte code pages often fit equally well; among the equals, Windows-1252 is by far the most
    # common legacy encoding of office text, so it wins the tie.
    score = min((m.chaos, -m.coherence) for m in matches)
    tied = [m for m in matches if (m.chaos, -m.coherence) == score]
    return str(next((m for m in tied if m.encoding == "cp1252"), tied[0]))
