from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.embed import SentenceTransformerEmbedder
from retrieval.rerank import CrossEncoderReranker
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.models import ModelLocation, load_model, resolve_device, resolve_model, verify_bundled

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.unit
@pytest.mark.parametrize("name", [MINILM, "all-MiniLM-L6-v2"])
def test_minilm_resolves_to_the_bundled_package(name: str) -> None:
    location = resolve_model(name, offline=True)
    assert location.name == MINILM
    assert location.source == "bundled"
    assert location.path is not None
    assert (location.path / "modules.json").is_file()
    assert isinstance(location.load_arg, str)
    verify_bundled(location)


@pytest.mark.unit
def test_a_model_folder_is_used_as_given(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    location = resolve_model(str(tmp_path), offline=True)
    assert location == ModelLocation(str(tmp_path), "path", tmp_path.resolve())


@pytest.mark.unit
def test_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourcebookError, match=r"config\.json") as info:
        resolve_model(str(tmp_path), offline=True)
    assert info.value.code is ErrorCode.MODEL_NOT_FOUND


@pytest.mark.unit
def test_hub_names_are_refused_offline_and_passed_through_online() -> None:
    with pytest.raises(SourcebookError, match="offline") as info:
        resolve_model("BAAI/bge-small-en-v1.5", offline=True)
    assert info.value.code is ErrorCode.MODEL_NOT_FOUND
    assert resolve_model("BAAI/bge-small-en-v1.5", offline=False) == ModelLocation(
        "BAAI/bge-small-en-v1.5", "hub", None
    )


@pytest.mark.unit
def test_corrupt_bundled_weights_are_detected(tmp_path: Path) -> None:
    location = resolve_model(MINILM, offline=True)
    assert location.path is not None
    copy = tmp_path / "model"
    shutil.copytree(location.path, copy)
    with (copy / "model.safetensors").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(SourcebookError, match="sha256"):
        verify_bundled(ModelLocation(MINILM, "bundled", copy))


@pytest.mark.unit
def test_explicit_devices_are_kept() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1"


@pytest.mark.model
def test_the_bundled_embedder_loads_offline_and_embeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    location = resolve_model(MINILM, offline=True)
    model = SentenceTransformer(location.load_arg, device=resolve_device("auto"))
    vectors = model.encode(["expense policy", "hotel cap per night"], normalize_embeddings=True)
    assert vectors.shape == (2, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert model.max_seq_length == 256


def _failing(error: Exception) -> object:
    def load(arg: str) -> object:
        raise error

    return load


@pytest.mark.unit
@pytest.mark.parametrize("error", [OSError("no such file"), ValueError("not a model folder")])
def test_a_model_that_cannot_be_read_is_model_not_found_with_its_role(tmp_path: Path, error: Exception) -> None:
    location = ModelLocation(str(tmp_path), "path", tmp_path)
    with pytest.raises(SourcebookError, match=rf"cannot load reranker {tmp_path}: ") as info:
        load_model(_failing(error), location, role="reranker", hint="check it")  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.MODEL_NOT_FOUND
    assert info.value.hint == "check it"
    assert info.value.__cause__ is error


@pytest.mark.unit
def test_a_loader_gets_the_load_argument_and_other_failures_pass_through(tmp_path: Path) -> None:
    location = ModelLocation(str(tmp_path), "path", tmp_path)
    assert load_model(str.upper, location, role="embedding model", hint="") == location.load_arg.upper()
    with pytest.raises(RuntimeError):
        load_model(_failing(RuntimeError("out of memory")), location, role="reranker", hint="")  # type: ignore[arg-type]


@pytest.mark.model
@pytest.mark.parametrize("kind", ["embedder", "reranker"])
def test_the_embedder_and_the_reranker_report_a_broken_folder_as_model_not_found(tmp_path: Path, kind: str) -> None:
    (tmp_path / "config.json").write_text("{}")
    location = resolve_model(str(tmp_path), offline=True)
    model = (
        SentenceTransformerEmbedder(location, device="cpu") if kind == "embedder" else CrossEncoderReranker(location)
    )
    with pytest.raises(SourcebookError) as info:
        model.warm_up()
    assert info.value.code is ErrorCode.MODEL_NOT_FOUND
