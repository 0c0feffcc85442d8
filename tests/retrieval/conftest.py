"""The retrieval tests' shared embedder."""

from __future__ import annotations

import pytest

from ingest.embed import SentenceTransformerEmbedder
from sourcebook.models import resolve_model


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")
