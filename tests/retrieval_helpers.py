"""Real text for retrieval tests: the docstrings of Python's own standard library (always on disk,
English prose written by many people), cut into chunk-sized passages, one document per module."""

from __future__ import annotations

import ast
import random
import sysconfig
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ingest import store
from ingest.embed import SentenceTransformerEmbedder
from ingest.types import Chunk
from retrieval.tokenize import Tokenizer
from sourcebook.db import Conn, Database, open_database
from sourcebook.db.spaces import EmbeddingSpace
from sourcebook.settings import Settings
from tests.conftest import make_settings
from tests.ingest_helpers import SAMPLES
from tests.serving_helpers import free_port, ingest_samples


def stdlib_documents(*, max_docs: int, words_per_chunk: int = 60, seed: int = 7) -> list[tuple[str, list[str]]]:
    """(module name, passages) for up to ``max_docs`` standard-library modules with docstrings."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[tuple[str, list[str]]] = []
    for path in sorted(root.glob("*.py")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        words: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    words.extend(doc.split())
        passages = [" ".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]
        passages = [p for p in passages if len(p.split()) >= 8]
        if passages:
            out.append((path.stem, passages))
    random.Random(seed).shuffle(out)
    return out[:max_docs]


def write_passages(
    conn: Conn,
    *,
    tenant_id: str,
    uri: str,
    passages: Sequence[str],
    groups: Sequence[str],
    space: EmbeddingSpace,
    tokenizer: Tokenizer,
    vectors: npt.NDArray[np.float32] | None = None,
    rng: np.random.Generator | None = None,
) -> uuid.UUID:
    """Store one document made of ``passages`` (random unit vectors unless given), as ingestion does."""
    chunks = [Chunk(i, text, uri, (), None, "text", len(text.split())) for i, text in enumerate(passages)]
    if vectors is None:
        rng = rng or np.random.default_rng(0)
        vectors = rng.standard_normal((len(chunks), space.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    doc = store.DocumentRecord(tenant_id, uri, uri, "text/plain", uri, 1, tuple(groups), "test")
    with conn.transaction():
        return store.write_document(
            conn,
            doc=doc,
            chunks=chunks,
            vectors=vectors,
            keywords=[tokenizer.tsvector(c.embed_text) for c in chunks],
            space=space,
            marks=[None] * len(chunks),
        )


@contextmanager
def samples_without_model(
    database_url: str, base: Path, embedder: SentenceTransformerEmbedder, tenant: str
) -> Iterator[tuple[Settings, Database]]:
    """The samples ingested into ``tenant`` of a database where no model server answers (so calibration
    writes its questions from the headings)."""
    refused = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: questions come from headings
    settings = make_settings(base, database_url=database_url, llm_base_url=refused)
    with open_database(settings) as db:
        ingest_samples(db, embedder, tenant, sorted(p.name for p in SAMPLES.iterdir() if p.suffix != ".json"))
        yield settings, db
