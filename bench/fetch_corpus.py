"""Fetch the ingestion benchmark's corpus: real documentation from Debian 12 packages (never committed).

    python bench/fetch_corpus.py            # full corpus (>= 2,000 pages) in bench/.cache/corpus/
    python bench/fetch_corpus.py --small    # a few hundred files in bench/.cache/corpus-small/

Downloads the ``.deb`` files with ``apt-get download`` into ``bench/.cache/debs`` (running
``apt-get update`` once if that fails), extracts them with ``dpkg-deb -x`` and assembles one folder
per source:

| folder | package | what |
|---|---|---|
| ``postgresql/`` | postgresql-doc-15 | the PostgreSQL 15 manual, HTML (many tables) |
| ``python/`` | python3.11-doc | the Python 3.11 documentation, HTML |
| ``debian-reference/`` | debian-reference-en | the Debian Reference, one PDF (captioned tables) |
| ``nodejs/`` | nodejs-doc | the Node.js API documentation, Markdown (gunzipped) |
| ``debian-policy/`` | debian-policy | Debian Policy and its companion documents, plain text (gunzipped) |

A hidden ``.manifest.json`` in the corpus folder (hidden files are not ingested) records package
versions, file counts and a page estimate (one page per HTML/Markdown/text file, a PDF's own pages).
``bench/.cache/debian-reference-tables.json`` holds the ground truth for the PDF table check: every
captioned table of the Debian Reference with its header row, read from the same package's HTML.

Idempotent: downloads and extractions are reused, files are only rewritten when their bytes change
(so a re-run leaves the corpus byte-identical), files no longer planned are removed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html.parser
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
MANIFEST = ".manifest.json"
TABLES_TRUTH = CACHE / "debian-reference-tables.json"


@dataclass(frozen=True)
class Source:
    folder: str
    package: str
    root: str  # inside the extracted package
    select: Callable[[Path], bool]
    small_count: int  # files kept by --small (spread evenly over the sorted list)


def _suffix_is(*suffixes: str) -> Callable[[Path], bool]:
    return lambda p: p.name.endswith(suffixes)


SOURCES = (
    Source("postgresql", "postgresql-doc-15", "usr/share/doc/postgresql-doc-15/html", _suffix_is(".html"), 150),
    Source("python", "python3.11-doc", "usr/share/doc/python3.11/html", _suffix_is(".html"), 80),
    Source(
        "debian-reference",
        "debian-reference-en",
        "usr/share/debian-reference",
        _suffix_is("debian-reference.en.pdf"),
        1,
    ),
    Source("nodejs", "nodejs-doc", "usr/share/doc/nodejs/api", _suffix_is(".md", ".md.gz"), 16),
    Source("debian-policy", "debian-policy", "usr/share/doc/debian-policy", _suffix_is(".txt.gz"), 4),
)


def run(cmd: list[str], cwd: Path | None = None) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def download(packages: list[str], debs: Path) -> dict[str, Path]:
    """The .deb of each package, downloaded once (``apt-get update`` first only if needed)."""
    debs.mkdir(parents=True, exist_ok=True)

    def present() -> dict[str, Path]:
        found = {}
        for name in packages:
            hits = sorted(debs.glob(f"{name}_*.deb"))
            if hits:
                found[name] = hits[-1]
        return found

    missing = [p for p in packages if p not in present()]
    if missing:
        try:
            run(["apt-get", "download", *missing], cwd=debs)
        except subprocess.CalledProcessError:
            run(["apt-get", "update"])
            run(["apt-get", "download", *missing], cwd=debs)
    found = present()
    lost = [p for p in packages if p not in found]
    if lost:
        sys.exit(f"could not download {', '.join(lost)}")
    return found


def deb_version(deb: Path) -> str:
    return run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def extract(deb: Path, into: Path) -> Path:
    """Extract once per .deb (a stamp file names the .deb it came from)."""
    stamp = into / ".extracted-from"
    if stamp.is_file() and stamp.read_text() == deb.name:
        return into
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    run(["dpkg-deb", "-x", str(deb), str(into)])
    stamp.write_text(deb.name)
    return into


def spread(items: list[Path], count: int) -> list[Path]:
    """``count`` items spread evenly over the list (all of them when it is shorter)."""
    if count >= len(items):
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def planned_files(source: Source, extracted: Path, small: bool) -> Iterator[tuple[Path, Path]]:
    """(source file, path relative to the source's corpus folder), gzipped files named without .gz."""
    root = extracted / source.root
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and source.select(p))
    if small:
        files = spread(files, source.small_count)
    for path in files:
        rel = path.relative_to(root)
        yield path, rel.with_name(rel.name.removesuffix(".gz"))


def read_source(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def write_if_changed(target: Path, data: bytes) -> bool:
    if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return True


def pdf_pages(path: Path) -> int:
    try:
        from pypdf import PdfReader

        return len(PdfReader(path).pages)
    except ImportError:
        return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


class _TableTruth(html.parser.HTMLParser):
    """Captioned tables of a DocBook HTML page: caption text and header cells (``<thead>``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict[str, object]] = []
        self._in_title = self._in_th = self._in_thead = False
        self._caption: list[str] = []
        self._cell: list[str] = []
        self._header: list[str] = []
        self._rows = 0
        self._in_table = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        if tag == "p" and cls == "title":
            self._in_title, self._caption = True, []
        elif tag == "table" and cls == "table":
            self._in_table, self._header, self._rows = True, [], 0
        elif self._in_table and tag == "thead":
            self._in_thead = True
        elif self._in_table and tag == "th" and self._in_thead:
            self._in_th, self._cell = True, []
        elif self._in_table and tag == "tr" and not self._in_thead:
            self._rows += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._in_title:
            self._in_title = False
        elif tag == "th" and self._in_th:
            self._in_th = False
            self._header.append(" ".join("".join(self._cell).split()))
        elif tag == "thead":
            self._in_thead = False
        elif tag == "table" and self._in_table:
            self._in_table = False
            caption = " ".join("".join(self._caption).split())
            if caption.startswith("Table "):
                self.tables.append({"caption": caption, "header": self._header, "body_rows": self._rows})

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._caption.append(data)
        if self._in_th:
            self._cell.append(data)


def table_truth(extracted: Path) -> list[dict[str, object]]:
    """Every captioned table of the Debian Reference (from its HTML chapters), in chapter order."""
    tables: list[dict[str, object]] = []
    folder = extracted / "usr/share/debian-reference"
    for page in sorted(folder.glob("*.en.html")):
        parser = _TableTruth()
        parser.feed(page.read_text(encoding="utf-8"))
        for table in parser.tables:
            tables.append({"chapter": page.name, **table})
    return tables


def assemble(small: bool, cache: Path) -> dict[str, object]:
    corpus = cache / ("corpus-small" if small else "corpus")
    debs = download([s.package for s in SOURCES], cache / "debs")
    sources: dict[str, object] = {}
    keep: set[Path] = set()
    written = 0
    pages = 0
    for source in SOURCES:
        deb = debs[source.package]
        extracted = extract(deb, cache / "extract" / source.package)
        count = 0
        source_pages = 0
        digest = hashlib.sha256()
        for path, rel in planned_files(source, extracted, small):
            target = corpus / source.folder / rel
            data = read_source(path)
            written += write_if_changed(target, data)
            keep.add(target)
            digest.update(str(rel).encode() + b"\0" + hashlib.sha256(data).digest())
            count += 1
            source_pages += pdf_pages(target) if target.suffix == ".pdf" else 1
        pages += source_pages
        sources[source.folder] = {
            "package": source.package,
            "version": deb_version(deb),
            "deb": deb.name,
            "files": count,
            "pages": source_pages,
            "sha256": digest.hexdigest(),
        }
        if source.package == "debian-reference-en":
            truth = table_truth(extracted)
            TABLES_TRUTH.write_text(json.dumps({"source": deb.name, "tables": truth}, indent=1))
    removed = 0
    for stale in sorted(p for p in corpus.rglob("*") if p.is_file() and p.name != MANIFEST and p not in keep):
        stale.unlink()
        removed += 1
    manifest = {
        "corpus": str(corpus),
        "variant": "small" if small else "full",
        "files": len(keep),
        "pages": pages,
        "page_rule": "1 page per HTML/Markdown/text file; a PDF counts its own pages",
        "sources": sources,
        "debian_reference_tables_truth": str(TABLES_TRUTH),
    }
    write_if_changed(corpus / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    manifest["changed_files"], manifest["removed_files"] = written, removed
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a few hundred files, for quick runs")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where downloads and the corpus go")
    args = parser.parse_args()
    print(json.dumps(assemble(args.small, args.cache), indent=2))


if __name__ == "__main__":
    main()
