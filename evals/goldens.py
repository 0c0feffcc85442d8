"""Golden sets for answers: versioned JSONL items over a named corpus, and the dev sets built from
real data that ships offline.

A set is a folder: ``set.json`` (name, version, corpus, description) and ``items.jsonl``, one item per
line: ``{id, question, reference_answer?, reference_contexts?, reference_chunk_ids?, must_abstain?,
memory_answer?, tags}``. Reference contexts are texts; ``reference_chunk_ids`` name stored chunks (the
passages a reviewer or a cited up-voted answer pointed at).
``memory_answer`` is the value the world knows where the corpus says otherwise (counterfactual items):
an answer that gives it came from the model's memory. Corpora are folders of files next to the sets
(``corpora/<name>/``), ingested as they are.

The dev sets (``build_dev_sets``):

- ``faq``: the Python FAQ (Debian's ``python3.11-doc``), its HTML pages ingested as they are; each
  question heading is an item, the section under it the reference context. Three pages (Windows, GUI,
  "installed") are left out of the corpus: their questions are ``faq-unanswerable``.
- ``counterfactual``: every paragraph of a seeded sample of SQuAD dev articles, with one answer per
  chosen paragraph swapped for another value of its kind, everywhere in the corpus
  (``evals.counterfactual``). The answer must give the swapped value.
- ``wiki-unanswerable``: SQuAD questions of the other articles, asked against the counterfactual corpus.
- ``halueval-counterfactual`` and ``halueval-unanswerable``: the same two over a thousand of HaluEval-QA's
  knowledge texts (Wikipedia sentences behind HotpotQA questions), built whether or not SQuAD dev can
  be had; the unanswerable questions are those of other rows whose answer the corpus does not hold.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.counterfactual import (
    KINDS,
    Swap,
    kind_of,
    name_parts,
    name_pool,
    occurs,
    replace_everywhere,
    standalone,
    swapped_value,
    wh_word,
)
from retrieval.tokenize import ENGLISH_STOP_WORDS
from sourcebook.errors import ErrorCode, SourcebookError

SET_VERSION = 1
FAQ_HELD_OUT = ("windows", "gui", "installed")
SIMILAR_HEADINGS = 0.5  # Jaccard of two headings' content words
_QUESTION_STOP = ENGLISH_STOP_WORDS | {"what", "which", "who", "when", "where", "why", "how", "can", "doe", "you"}
_HEADINGS = ("h2", "h3", "h4")


@dataclass(frozen=True, slots=True)
class GoldenItem:
    id: str
    question: str
    reference_answer: str | None = None
    reference_contexts: tuple[str, ...] = ()
    reference_chunk_ids: tuple[int, ...] = ()
    must_abstain: bool = False
    memory_answer: str | None = None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v not in (None, (), False)
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GoldenItem:
        if not isinstance(data.get("id"), str) or not isinstance(data.get("question"), str):
            raise ValueError("an item needs a string id and question")
        return cls(
            id=data["id"],
            question=data["question"],
            reference_answer=data.get("reference_answer"),
            reference_contexts=tuple(data.get("reference_contexts", ())),
            reference_chunk_ids=tuple(int(n) for n in data.get("reference_chunk_ids", ())),
            must_abstain=bool(data.get("must_abstain", False)),
            memory_answer=data.get("memory_answer"),
            tags=tuple(data.get("tags", ())),
        )


@dataclass(frozen=True, slots=True)
class GoldenSet:
    name: str
    corpus: str
    items: tuple[GoldenItem, ...]
    description: str = ""
    version: int = SET_VERSION
    folder: Path | None = field(default=None, compare=False)

    @property
    def corpus_dir(self) -> Path:
        if self.folder is None:
            raise ValueError("the set was not read from a folder")
        return self.folder.parent / "corpora" / self.corpus


def write_set(out: Path, golden: GoldenSet) -> Path:
    folder = out / golden.name
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"name": golden.name, "version": golden.version, "corpus": golden.corpus, "description": golden.description}
    (folder / "set.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    with (folder / "items.jsonl").open("w", encoding="utf-8") as fh:
        for item in golden.items:
            fh.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
    return folder


def read_set(folder: Path) -> GoldenSet:
    """A set folder (``set.json`` + ``items.jsonl``); a malformed one is a clear error, not a traceback."""
    meta_path, items_path = folder / "set.json", folder / "items.jsonl"
    if not meta_path.is_file() or not items_path.is_file():
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"{folder} is not a golden set (it needs set.json and items.jsonl)",
            hint="build the dev sets with `sourcebook eval dev-sets --out DIR`",
        )
    items: list[GoldenItem] = []
    where = str(meta_path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        name, corpus = str(meta["name"]), str(meta["corpus"])
        for n, line in enumerate(items_path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{items_path}:{n}"
            if line.strip():
                items.append(GoldenItem.from_json(json.loads(line)))
    except (ValueError, KeyError, TypeError) as exc:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"malformed golden set at {where}: {exc}") from exc
    return GoldenSet(name, corpus, tuple(items), str(meta.get("description", "")), int(meta.get("version", 1)), folder)


def faq_sections(pages: Iterable[Path]) -> Iterator[tuple[Path, str, str, str, str]]:
    """(page, page title, section id, heading, text) of each answered question of Sphinx FAQ pages."""
    import lxml.html

    for page in sorted(pages):
        root = lxml.html.fromstring(page.read_bytes(), parser=lxml.html.HTMLParser(encoding="utf-8"))
        title = " ".join(root.findtext(".//title", "").split()).split(" — ")[0]
        for section in root.iter("section"):
            heading = next((child for child in section if child.tag in _HEADINGS), None)
            body = [c for c in section if c.tag not in (*_HEADINGS, "section")]
            text = "\n".join(" ".join(c.text_content().split()) for c in body).strip()
            if heading is None or len(text) < 40:  # "See the next question." answers nothing
                continue
            yield page, title, str(section.get("id")), heading.text_content().replace("¶", "").strip(), text


def faq_sets(
    pages: Sequence[Path], out: Path, *, cross_set: Sequence[GoldenItem] = (), cross_name: str = "another set"
) -> list[GoldenSet]:
    """The FAQ corpus (the pages kept, copied as they are) and its answerable and unanswerable sets;
    ``cross_set`` (questions of the set ``cross_name``) join the unanswerable ones."""
    corpus = out / "corpora" / "python-faq"
    corpus.mkdir(parents=True, exist_ok=True)
    answerable: list[GoldenItem] = []
    unanswerable: list[GoldenItem] = []
    for page, _, section, heading, text in faq_sections(pages):
        item_id = f"{page.stem}#{section}"
        if page.stem in FAQ_HELD_OUT:
            unanswerable.append(GoldenItem(item_id, heading, must_abstain=True, tags=("faq", page.stem)))
        else:
            answerable.append(GoldenItem(item_id, heading, reference_contexts=(text,), tags=("faq", page.stem)))
    # A page left out may ask what a page kept answers ("What is Python?" is on two of them): not unanswerable.
    kept = [_heading_words(item.question) for item in answerable]
    unanswerable = [item for item in unanswerable if not any(_similar(_heading_words(item.question), k) for k in kept)]
    unanswerable += [GoldenItem(i.id, i.question, must_abstain=True, tags=("cross-set",)) for i in cross_set]
    for page in pages:
        if page.stem not in FAQ_HELD_OUT:
            shutil.copy2(page, corpus / page.name)
    return [
        GoldenSet("faq", "python-faq", tuple(answerable), "Python FAQ question headings; the section is the reference"),
        GoldenSet(
            "faq-unanswerable",
            "python-faq",
            tuple(unanswerable),
            f"questions of the FAQ pages left out of the corpus ({', '.join(FAQ_HELD_OUT)}) and "
            f"{len(cross_set)} of {cross_name}: the answer is the abstention",
        ),
    ]


def _heading_words(text: str) -> set[str]:
    words = (w.removesuffix("s") for w in re.findall(r"[a-z0-9]+", text.lower()))
    return {w for w in words if len(w) > 2 and w not in _QUESTION_STOP}


def _similar(a: set[str], b: set[str]) -> bool:
    return bool(a and b) and len(a & b) / len(a | b) >= SIMILAR_HEADINGS


def _questions(articles: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for article in articles:
        for paragraph in article["paragraphs"]:
            yield from paragraph["qas"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60]


@dataclass(frozen=True, slots=True)
class _Asked:
    """A question of a source dataset with its gold answer."""

    id: str
    question: str
    answer: str


def _swapped(
    texts: dict[str, str],
    asked: dict[str, list[_Asked]],
    pool: dict[str, list[str]],
    *,
    items: int,
    rng: random.Random,
    max_documents: int | None = None,
) -> tuple[list[GoldenItem], dict[str, str]]:
    """Counterfactual items over ``texts`` (documents by key): per document at most one question whose
    answer is swapped for another value of its kind (names from ``pool``, by wh-word) everywhere in the
    corpus, the kinds taken in turn so that names don't crowd out numbers and dates. Returns the items
    and the swapped texts. A swap that would leave the original (or a part of a name) anywhere, or whose
    replacement the corpus already has, is dropped. ``max_documents``, for a corpus of unrelated
    documents: a value in more documents than that ("American") is not swapped, nor one that another
    question names, so that no other question loses the words it asks about."""
    questions = [qa.question for options in asked.values() for qa in options]
    by_kind: dict[str, list[tuple[str, _Asked]]] = {k: [] for k in KINDS}
    keys = list(texts)
    rng.shuffle(keys)
    for key in keys:
        options = [qa for qa in asked.get(key, ()) if kind_of(qa.answer) is not None and standalone(qa.question)]
        if options:
            qa = rng.choice(options)
            by_kind[str(kind_of(qa.answer))].append((key, qa))
    picked: list[tuple[str, _Asked, Swap]] = []
    used: set[str] = set()
    while len(picked) < items and any(by_kind.values()):
        for kind in KINDS:
            if not by_kind[kind] or len(picked) >= items:
                continue
            key, qa = by_kind[kind].pop()
            replacement = swapped_value(kind, qa.answer, pool.get(wh_word(qa.question), []), rng)
            if replacement is None or {qa.answer, replacement} & used or occurs(qa.answer, qa.question):
                continue
            if max_documents is not None and (
                sum(occurs(qa.answer, t) for t in texts.values()) > max_documents
                or any(occurs(qa.answer, q) for q in questions)
            ):
                continue
            if any(occurs(replacement, t) for t in texts.values()):
                continue
            used |= {qa.answer, replacement}
            picked.append((key, qa, Swap(qa.answer, replacement, kind)))
    swapped = replace_everywhere(texts, (s for _, _, s in picked))
    kept: list[GoldenItem] = []
    for key, qa, swap in picked:
        if not occurs(swap.replacement, swapped[key]) or any(occurs(swap.original, t) for t in swapped.values()):
            continue
        # "Agricola" left beside the swapped "Johannes Agricola" would still answer "who?" the old way.
        if swap.kind == "name" and any(occurs(part, t) for part in name_parts(swap.original) for t in swapped.values()):
            continue
        kept.append(
            GoldenItem(
                f"{key}/{qa.id}",
                qa.question.strip(),
                reference_answer=swap.replacement,
                reference_contexts=(swapped[key],),
                memory_answer=swap.original,
                tags=("counterfactual", swap.kind),
            )
        )
    return kept, swapped


def _squad_asked(qa: dict[str, Any]) -> _Asked:
    return _Asked(str(qa["id"]), str(qa["question"]), str(qa["answers"][0]["text"]))


def squad_sets(
    squad: dict[str, Any], out: Path, *, articles: int = 10, items: int = 80, seed: int = 7
) -> list[GoldenSet]:
    """The counterfactual corpus and set from SQuAD dev, and the unanswerable set of the other articles."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible sample, not a secret)
    data = list(squad["data"])
    chosen = set(rng.sample(range(len(data)), k=min(articles, len(data))))
    inside = [data[i] for i in sorted(chosen)]
    outside = [data[i] for i in range(len(data)) if i not in chosen]
    pool = name_pool((qa["question"], qa["answers"][0]["text"]) for qa in _questions(outside))
    paragraphs = {f"{_slug(a['title'])}-{p:03d}": (a, par) for a in inside for p, par in enumerate(a["paragraphs"])}
    texts = {key: str(par["context"]) for key, (_, par) in paragraphs.items()}
    titles = {key: str(a["title"]).replace("_", " ") for key, (a, _) in paragraphs.items()}
    asked = {key: [_squad_asked(qa) for qa in par["qas"]] for key, (_, par) in paragraphs.items()}
    kept, swapped = _swapped(texts, asked, pool, items=items, rng=rng)
    corpus = out / "corpora" / "squad-counterfactual"
    corpus.mkdir(parents=True, exist_ok=True)
    for key, text in swapped.items():
        (corpus / f"{key}.md").write_text(f"# {titles[key]}\n\n{text}\n", encoding="utf-8")
    candidates = [qa for qa in _questions(outside) if standalone(qa["question"])]
    unanswerable = [
        GoldenItem(str(qa["id"]), str(qa["question"]).strip(), must_abstain=True, tags=("wiki-unanswerable",))
        for qa in rng.sample(candidates, k=min(len(candidates), items))
    ]
    return [
        GoldenSet(
            "counterfactual",
            "squad-counterfactual",
            tuple(kept),
            f"SQuAD dev ({len(inside)} articles): one answer per item swapped everywhere in the corpus; "
            "the answer must give the swapped value",
        ),
        GoldenSet(
            "wiki-unanswerable",
            "squad-counterfactual",
            tuple(unanswerable),
            "SQuAD dev questions of articles outside the corpus: the answer is the abstention",
        ),
    ]


# A HaluEval answer swapped in more documents than this is a common word, not one row's fact.
MAX_SWAP_DOCUMENTS = 3


def halueval_counterfactual_sets(
    rows: Sequence[dict[str, Any]], out: Path, *, documents: int = 1000, items: int = 80, seed: int = 7
) -> list[GoldenSet]:
    """The counterfactual set over HaluEval-QA's knowledge texts (Wikipedia sentences of HotpotQA, one
    document each, ``documents`` of them), and the unanswerable set of questions of the other rows.

    The same swaps as the SQuAD set: an answer that is a year, number, date or name is replaced
    everywhere in the corpus by another of its kind (names: the answers of rows outside the corpus),
    but only one found in at most ``MAX_SWAP_DOCUMENTS`` documents and in no question: the documents
    are unrelated, so swapping "American" everywhere would only garble others ("an Piscataquis actor").
    A document is its knowledge text alone: no title from the question, which would hand retrieval
    the question's words. An outside question whose answer the corpus has is not unanswerable: left out."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible sample, not a secret)
    chosen = set(rng.sample(range(len(rows)), k=min(documents, len(rows))))
    pool = name_pool((str(r["question"]), str(r["right_answer"])) for n, r in enumerate(rows) if n not in chosen)
    texts = {f"halueval-{n:05d}": str(rows[n]["knowledge"]) for n in sorted(chosen)}
    asked = {
        f"halueval-{n:05d}": [_Asked("question", str(rows[n]["question"]), str(rows[n]["right_answer"]))]
        for n in sorted(chosen)
    }
    kept, swapped = _swapped(texts, asked, pool, items=items, rng=rng, max_documents=MAX_SWAP_DOCUMENTS)
    corpus = out / "corpora" / "halueval-counterfactual"
    corpus.mkdir(parents=True, exist_ok=True)
    for key, text in swapped.items():
        (corpus / f"{key}.txt").write_text(f"{text}\n", encoding="utf-8")
    whole = "\n".join(swapped.values())
    others = [n for n in range(len(rows)) if n not in chosen]
    rng.shuffle(others)
    unanswerable: list[GoldenItem] = []
    for n in others:
        question, answer = str(rows[n]["question"]).strip(), str(rows[n]["right_answer"])
        if len(unanswerable) < items and standalone(question) and not occurs(answer, whole):
            unanswerable.append(
                GoldenItem(f"halueval-{n:05d}", question, must_abstain=True, tags=("halueval-unanswerable",))
            )
    return [
        GoldenSet(
            "halueval-counterfactual",
            "halueval-counterfactual",
            tuple(kept),
            f"HaluEval-QA knowledge ({len(texts)} documents): one answer per item swapped everywhere in the "
            "corpus; the answer must give the swapped value",
        ),
        GoldenSet(
            "halueval-unanswerable",
            "halueval-counterfactual",
            tuple(unanswerable),
            "HaluEval-QA questions of rows outside the corpus, whose answer it does not hold: the answer is the "
            "abstention",
        ),
    ]


def build_dev_sets(out: Path, cache: Path, *, seed: int = 7) -> tuple[list[Path], list[str]]:
    """The dev sets and their corpora under ``out``, from data downloaded once into ``cache``: the FAQ
    sets, the HaluEval counterfactual and unanswerable sets, and the SQuAD ones when SQuAD dev can be
    had; a line says when it could not (the other sets are built, and the FAQ's cross-set questions
    come from HaluEval). The FAQ and HaluEval sources are required: failing to fetch one is an error."""
    from evals.datasets import fetch_halueval, fetch_python_faq, fetch_squad

    missing: list[str] = []
    halueval, halueval_unanswerable = halueval_counterfactual_sets(fetch_halueval(cache), out, seed=seed)
    sets = [halueval, halueval_unanswerable]
    cross = halueval_unanswerable
    try:
        squad, wiki_unanswerable = squad_sets(fetch_squad(cache), out, seed=seed)
        sets += [squad, wiki_unanswerable]
        cross = wiki_unanswerable
    except SourcebookError as exc:
        missing.append(f"SQuAD dev: {exc.message} (no counterfactual or wiki-unanswerable set)")
    faq = faq_sets(fetch_python_faq(cache), out, cross_set=cross.items[:24], cross_name=cross.name)
    return [write_set(out, golden) for golden in (*faq, *sets)], missing
