"""Golden sets built from data files: SQuAD dev (its paragraphs become the corpus's documents),
HaluEval-QA (each question's knowledge text becomes a document), and abstention items taken from
another set's questions (asked against a corpus that doesn't answer them, so the right answer is the
abstention)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evals.goldens import GoldenItem, GoldenSet


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60]


def sample_indices(count: int, limit: int | None, seed: int) -> list[int]:
    """Indices of a seeded sample of ``limit`` out of ``count``, in their original order."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), k=limit))  # noqa: S311 (a sample, not a secret)


def pick(items: Sequence[GoldenItem], *, limit: int | None, seed: int) -> list[GoldenItem]:
    """A seeded sample of ``limit`` items in their order (all of them without a limit)."""
    return [items[n] for n in sample_indices(len(items), limit, seed)]


def squad_set(
    squad: dict[str, Any], corpus_dir: Path, *, name: str, limit: int | None, seed: int, articles: int | None = None
) -> GoldenSet:
    """A set of SQuAD dev questions, one per paragraph at most, over the paragraphs of the first
    ``articles`` articles written as Markdown documents (title and paragraph) into ``corpus_dir``."""
    corpus_dir.mkdir(parents=True, exist_ok=True)
    items: list[GoldenItem] = []
    for article in squad["data"][:articles]:
        title = str(article["title"]).replace("_", " ")
        for p, paragraph in enumerate(article["paragraphs"]):
            key = f"{_slug(title)}-{p:03d}"
            context = str(paragraph["context"])
            (corpus_dir / f"{key}.md").write_text(f"# {title}\n\n{context}\n", encoding="utf-8")
            if paragraph["qas"]:
                qa = paragraph["qas"][0]
                answer = str(qa["answers"][0]["text"])
                items.append(
                    GoldenItem(str(qa["id"]), str(qa["question"]).strip(), answer, (context,), tags=("squad",))
                )
    chosen = [items[i] for i in sample_indices(len(items), limit, seed)]
    return GoldenSet(name, corpus_dir.name, tuple(chosen), f"SQuAD v1.1 dev: {len(chosen)} questions")


def halueval_set(
    rows: Sequence[dict[str, Any]], corpus_dir: Path, *, name: str, limit: int | None, seed: int
) -> GoldenSet:
    """A set of HaluEval-QA questions; each chosen question's knowledge text is a document of the corpus
    and the right answer its reference (the hallucinated answer is the meta-eval's, not the set's)."""
    corpus_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for n in sample_indices(len(rows), limit, seed):
        row = rows[n]
        key = f"halueval-{n:05d}"
        knowledge = str(row["knowledge"])
        (corpus_dir / f"{key}.md").write_text(f"# {str(row['question'])[:80]}\n\n{knowledge}\n", encoding="utf-8")
        items.append(GoldenItem(key, str(row["question"]), str(row["right_answer"]), (knowledge,), tags=("halueval",)))
    return GoldenSet(name, corpus_dir.name, tuple(items), f"HaluEval-QA: {len(items)} questions")


def with_abstentions(golden: GoldenSet, others: Iterable[GoldenItem], *, count: int, seed: int) -> GoldenSet:
    """``golden`` plus ``count`` questions of another set, each to be answered by the abstention."""
    pool = [i for i in others if not i.must_abstain]
    picked = [pool[n] for n in sample_indices(len(pool), count, seed)]
    extra = tuple(
        GoldenItem(f"abstain/{i.id}", i.question, must_abstain=True, tags=("abstention", "cross-set")) for i in picked
    )
    return GoldenSet(golden.name, golden.corpus, golden.items + extra, golden.description, golden.version)
