"""Upload names: what the client sends is a display name only, never part of a path."""

from __future__ import annotations

import pytest

from ingest.documents import local_name, safe_filename

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd.md", "passwd.md"),
        ("C:\\Users\\eve\\..\\secret.txt", "secret.txt"),
        ("report\x00.pdf", "report.pdf"),
        ("...", "upload"),
        (".bashrc", "bashrc"),
        (None, "upload"),
        ("a" * 500 + ".md", "a" * 200),
        ("Résumé 2025.docx", "Résumé 2025.docx"),
    ],
)
def test_upload_names_are_display_names_only(given: str | None, expected: str) -> None:
    assert safe_filename(given) == expected


def test_the_local_file_keeps_only_a_plain_extension() -> None:
    assert local_name("notes.MD") == "upload.md"
    assert local_name("x.tar.gz") == "upload.gz"
    assert local_name("evil.md/../../x") == "upload"
    assert local_name("weird.ext$") == "upload"
    assert "/" not in local_name("a/b/c.txt")
