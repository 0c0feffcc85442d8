"""The ``Embedder`` contract (retrieval/types.py), run against every implementation: unit-length
float32 rows, one per text, the same vector for the same text whatever batch it comes in."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from evals.retrieval import _PrecomputedEmbedder
from ingest.embed import SentenceTransformerEmbedder
from retrieval.types import Embedder
from sourcebook.models import resolve_model
from tests.doubles import HashEmbedder

TEXTS = ["How do I request a laptop?", "Travel is booked by train.", "", "Unicode: café, 東京, emoji 🚆"]


def _minilm() -> Embedder:
    return SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")


def _precomputed() -> Embedder:
    inner = HashEmbedder()
    return _PrecomputedEmbedder(inner, dict(zip(TEXTS[:2], inner.embed(TEXTS[:2]), strict=True)))


IMPLEMENTATIONS: dict[str, Callable[[], Embedder]] = {
    "hash": HashEmbedder,
    "precomputed": _precomputed,
    "sentence-transformers": _minilm,
}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("hash", marks=pytest.mark.unit),
        pytest.param("precomputed", marks=pytest.mark.unit),
        pytest.param("sentence-transformers", marks=pytest.mark.model),
    ],
)
def embedder(request: pytest.FixtureRequest) -> Embedder:
    made: Embedder = IMPLEMENTATIONS[request.param]()
    return made


def test_it_names_its_model_and_dimension(embedder: Embedder) -> None:
    assert isinstance(embedder.model_name, str)
    assert embedder.model_name
    assert embedder.dim > 0


def test_one_unit_length_float32_row_per_text(embedder: Embedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), embedder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_no_texts_is_no_rows(embedder: Embedder) -> None:
    assert embedder.embed([]).shape[0] == 0


def test_a_text_gets_the_same_vector_alone_or_in_a_batch(embedder: Embedder) -> None:
    batch = embedder.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.allclose(embedder.embed([text])[0], batch[i], atol=1e-5)


def test_different_texts_get_different_vectors(embedder: Embedder) -> None:
    first, second = embedder.embed(TEXTS[:2])
    assert float(first @ second) < 0.99
