from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from ingest.detect import Limits, decode_text, sniff
from sourcebook.errors import ErrorCode, SourcebookError
from tests.ingest_helpers import SAMPLES, make_docx, make_zip_bomb_docx

pytestmark = pytest.mark.unit
LIMITS = Limits(max_file_bytes=2**20, max_unzipped_bytes=16 * 2**20)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("expense_policy_2023.pdf", "pdf"),
        ("onboarding_handbook.docx", "docx"),
        ("q3_2025_all_hands.pptx", "pptx"),
        ("price_list_2025.xlsx", "xlsx"),
        ("faq.html", "html"),
        ("vpn_setup.md", "md"),
        ("it_support_contacts.txt", "txt"),
        ("q3_offsite_planning_thread.eml", "eml"),
    ],
)
def test_sample_types_are_recognised(name: str, kind: str) -> None:
    assert sniff(SAMPLES / name, LIMITS) == kind


def test_content_wins_over_a_misleading_name(tmp_path: Path) -> None:
    fake = tmp_path / "report.txt"
    fake.write_bytes((SAMPLES / "expense_policy_2023.pdf").read_bytes())
    assert sniff(fake, LIMITS) == "pdf"
    page = tmp_path / "page"
    page.write_text("<!DOCTYPE html><html><body><p>hi</p></body></html>")
    assert sniff(page, LIMITS) == "html"
    docx = make_docx(tmp_path / "renamed.bin", ["hello"])
    assert sniff(docx, LIMITS) == "docx"


def _error(path: Path, limits: Limits = LIMITS) -> SourcebookError:
    with pytest.raises(SourcebookError) as info:
        sniff(path, limits)
    return info.value


def test_zero_bytes(tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_bytes(b"")
    err = _error(tmp_path / "empty.md")
    assert err.code is ErrorCode.INVALID_REQUEST
    assert "0 bytes" in err.message


def test_over_the_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(b"a" * (2**20 + 1))
    err = _error(tmp_path / "big.txt")
    assert err.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert "SOURCEBOOK_INGEST_MAX_FILE_MB" in (err.hint or "")


def test_unknown_binary_type(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    assert _error(tmp_path / "photo.jpg").code is ErrorCode.UNSUPPORTED_MEDIA_TYPE
    (tmp_path / "notes.xyz").write_text("plain words with an unknown extension")
    assert _error(tmp_path / "notes.xyz").code is ErrorCode.UNSUPPORTED_MEDIA_TYPE


def test_truncated_docx(tmp_path: Path) -> None:
    whole = (SAMPLES / "onboarding_handbook.docx").read_bytes()
    (tmp_path / "cut.docx").write_bytes(whole[: len(whole) // 2])
    err = _error(tmp_path / "cut.docx")
    assert err.code is ErrorCode.INVALID_REQUEST
    assert "corrupt or truncated" in err.message


def test_zip_bomb(tmp_path: Path) -> None:
    err = _error(make_zip_bomb_docx(tmp_path / "bomb.docx", inflated_mb=64))
    assert err.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert "ZIP bomb" in err.message


def test_a_plain_zip_is_not_an_office_file(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert _error(tmp_path / "archive.zip").code is ErrorCode.UNSUPPORTED_MEDIA_TYPE


def test_a_vanished_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.pdf").code is ErrorCode.NOT_FOUND


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("naïve café".encode(), "naïve café"),
        (b"\xef\xbb\xbfwith BOM", "with BOM"),
        ("Grüße aus Köln, schöne Straße und Übermaß an Käse.".encode("latin-1"), "Grüße aus Köln"),
    ],
)
def test_decode_text(data: bytes, text: str) -> None:
    assert decode_text(data).startswith(text)
