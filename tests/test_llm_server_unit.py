"""`sourcebook llm serve`'s pure parts: the dtype from the CPU's flags, the OpenMP binding, the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.llm_server import command, cpu_dtype, cpu_flags, dtype_args, omp_bind

pytestmark = pytest.mark.unit

X86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f {extra}\nbogomips\t: 4800\n"


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    assert cpu_flags(X86.format(extra="avx512_bf16")) >= {"avx2", "avx512f", "avx512_bf16"}
    assert cpu_flags("processor\t: 0\nFeatures\t: fp asimd bf16\n") == {"fp", "asimd", "bf16"}
    assert cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("avx512_bf16", "bfloat16"),
        ("amx_bf16 amx_tile", "bfloat16"),
        ("avx512_vnni", "float32"),  # AVX-512 without its bf16 extension emulates bf16
        ("", "float32"),
    ],
)
def test_bf16_only_where_the_cpu_computes_it(extra: str, expected: str) -> None:
    assert cpu_dtype(cpu_flags(X86.format(extra=extra))) == expected


def test_the_dtype_setting_overrides_and_a_gpu_keeps_vllms_default() -> None:
    assert dtype_args("auto", gpu=False, flags={"avx2"}) == ["--dtype", "float32"]
    assert dtype_args("auto", gpu=False, flags={"avx512_bf16"}) == ["--dtype", "bfloat16"]
    assert dtype_args("auto", gpu=True, flags={"avx2"}) == []
    assert dtype_args("bfloat16", gpu=False, flags={"avx2"}) == ["--dtype", "bfloat16"]
    assert dtype_args("float16", gpu=True, flags=set()) == ["--dtype", "float16"]


def test_small_machines_give_every_core_to_the_worker() -> None:
    assert omp_bind("auto", {1, 0}) == "0,1"
    assert omp_bind("auto", {0, 1, 2, 3}) == "0,1,2,3"
    assert omp_bind("auto", set(range(16))) is None  # vLLM's own binding, one core for the front end
    assert omp_bind("0-7|8-15", {0, 1}) == "0-7|8-15"
    assert omp_bind("nobind", set(range(16))) == "nobind"


def test_the_command_carries_the_dtype() -> None:
    args = command(
        Path("/venv/bin/python"),
        Path("/models/m"),
        "m",
        host="127.0.0.1",
        port=8001,
        max_model_len=2048,
        dtype=["--dtype", "float32"],
    )
    assert args[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert args[args.index("--dtype") + 1] == "float32"
    assert args[args.index("--max-model-len") + 1] == "2048"
