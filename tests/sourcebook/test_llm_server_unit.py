"""`sourcebook llm serve`'s pure parts: the dtype from the CPU's flags, the OpenMP binding, the command,
the restart backoff, the speed and the context budget it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from sourcebook.errors import SourcebookError
from sourcebook.llm.server import command, cpu_dtype, cpu_flags, dtype_args, omp_bind
from sourcebook.llm.speed import Speed, context_chars, rates, verdict
from sourcebook.llm.supervisor import backoff_s
from tests.conftest import make_settings

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


def test_the_worker_binding_is_vllms_own_unless_every_core_or_a_list_is_asked_for() -> None:
    assert omp_bind("vllm", {0, 1}) is None  # vLLM's auto binding, one core for its front end
    assert omp_bind("all", {1, 0}) == "0,1"
    assert omp_bind("all", set(range(16))) == ",".join(str(i) for i in range(16))
    assert omp_bind("all", set()) is None
    assert omp_bind("0-7|8-15", {0, 1}) == "0-7|8-15"
    assert omp_bind("nobind", {0, 1}) == "nobind"


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


def test_restarts_back_off_doubling_within_ten_minutes_up_to_the_cap() -> None:
    assert backoff_s([100.0], 100.0, cap_s=60) == 1
    assert backoff_s([100.0, 110.0, 120.0], 121.0, cap_s=60) == 4
    assert backoff_s([float(t) for t in range(10)], 10.0, cap_s=60) == 60
    assert backoff_s([0.0, 1.0, 2.0, 700.0], 701.0, cap_s=60) == 1  # the old ones no longer count


def test_rates_are_read_off_the_stream() -> None:
    arrivals = [2.0 + i * 0.1 for i in range(32)]  # first token after 2 s, then 10 per second
    speed = rates(0.0, arrivals, {"prompt_tokens": 300, "completion_tokens": 32})
    assert speed == Speed(prompt_tokens_s=150.0, decode_tokens_s=10.0, prompt_tokens=300, decode_tokens=32)
    with pytest.raises(SourcebookError):
        rates(0.0, [1.0], {"prompt_tokens": 300, "completion_tokens": 1})


def test_the_context_budget_is_what_prefills_within_the_deadline(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, answer_first_token_s=30, llm_max_in_flight=2, answer_max_tokens=400)
    slow = Speed(prompt_tokens_s=100, decode_tokens_s=10, prompt_tokens=300, decode_tokens=32)
    # 100 tokens/s × 30 s / (2 × 2 admitted at once) = 750 tokens, less ~300 of instructions, × 3.5 chars
    assert context_chars(slow, settings) == int((750 - 300) * 3.5)
    fast = Speed(prompt_tokens_s=5000, decode_tokens_s=60, prompt_tokens=300, decode_tokens=32)
    assert context_chars(fast, settings, max_model_len=2048) == int((2048 - 400 - 300) * 3.5)  # the window
    crawling = Speed(prompt_tokens_s=10, decode_tokens_s=1, prompt_tokens=300, decode_tokens=32)
    assert context_chars(crawling, settings) == 1000  # one short passage at least
    assert context_chars(None, settings) == 3600
    assert context_chars(slow, make_settings(tmp_path, answer_context_chars=2000)) == 2000


def test_a_slow_server_is_said_to_be_slow_with_the_options(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, answer_max_tokens=400)
    slow = verdict(Speed(80, 4.0, 300, 32), settings)
    assert slow is not None
    assert "4 tokens/s" in slow
    assert "~100 s" in slow
    assert "--model small" in slow
    assert "GPU" in slow
    assert "SOURCEBOOK_ANSWER_MAX_PASSAGES" in slow
    assert verdict(Speed(80, 11.0, 300, 32), settings) is None
