"""Calibration's and reranker training's shared set-up: the samples ingested into a tenant of a
database where no model server answers (so calibration writes its questions from the headings)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.embed import SentenceTransformerEmbedder
from sourcebook.db import Database, open_database
from sourcebook.models import resolve_model
from sourcebook.settings import Settings
from tests.conftest import make_settings
from tests.ingest_helpers import SAMPLES
from tests.serving_helpers import free_port, ingest_samples


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")


@contextmanager
def samples_without_model(
    database_url: str, base: Path, embedder: SentenceTransformerEmbedder, tenant: str
) -> Iterator[tuple[Settings, Database]]:
    refused = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: questions come from headings
    settings = make_settings(base, database_url=database_url, llm_base_url=refused)
    with open_database(settings) as db:
        ingest_samples(db, embedder, tenant, sorted(p.name for p in SAMPLES.iterdir() if p.suffix != ".json"))
        yield settings, db
