"""The query embedder is the configured model, built without loading it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.embed import query_embedder
from sourcebook.errors import ErrorCode, SourcebookError
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


def test_the_query_embedder_is_the_configured_model(tmp_path: Path) -> None:
    embedder = query_embedder(make_settings(tmp_path, embedding_model="all-MiniLM-L6-v2"))
    assert embedder.model_name == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_hub_model_is_refused_offline_before_anything_loads(tmp_path: Path) -> None:
    with pytest.raises(SourcebookError) as caught:
        query_embedder(make_settings(tmp_path, embedding_model="BAAI/bge-small-en-v1.5", offline=True))
    assert caught.value.code is ErrorCode.MODEL_NOT_FOUND
