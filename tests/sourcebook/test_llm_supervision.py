"""`sourcebook llm serve --detach` keeps vLLM serving: the real SmolLM2 server killed, then hung,
readiness turning degraded each time, the supervisor restarting it, readiness ready again, and the
restarts shown by `/health/ready` and `doctor`; plus the status file that carries them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sourcebook.doctor import check_model_server, check_model_speed
from sourcebook.llm.server import pidfile
from sourcebook.llm.supervisor import Status, describe_supervision, read_status, status_for, write_status
from sourcebook.settings import Settings
from tests.conftest import make_settings
from tests.serving_helpers import free_port, running_api

ROOT = Path(__file__).resolve().parents[2]


def test_a_status_is_found_for_its_url_only_while_its_supervisor_lives(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    live = Status(os.getpid(), "http://127.0.0.1:8011/v1", "m", "log", 2048, state="ready", restarts=2)
    write_status(pidfile(settings, 8011), live)
    assert status_for(settings, "http://localhost:8011/v1") == live
    assert status_for(settings, "http://127.0.0.1:8012/v1") is None
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_status(pidfile(settings, 8011), Status(gone.pid, live.url, "m", "log", 2048))
    assert status_for(settings, live.url) is None
    assert describe_supervision(live) == "supervised (ready), restarted 2 times"


def sourcebook(data_dir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCEBOOK_")}
    env |= {
        "SOURCEBOOK_DATA_DIR": str(data_dir),
        # the models `sourcebook models prepare small` made in the default data dir
        "SOURCEBOOK_LLM_MODELS_DIR": str(Settings(_env_file=None).models_dir),  # type: ignore[call-arg]
        "SOURCEBOOK_LLM_HEALTH_INTERVAL_S": "1",
        "SOURCEBOOK_LLM_HEALTH_TIMEOUT_S": "1",
        "SOURCEBOOK_LLM_HEALTH_FAILURES": "2",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "sourcebook", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def supervisor(readiness: dict[str, object]) -> dict[str, object]:
    found: dict[str, object] = readiness["checks"]["model_server"][0]["supervisor"]  # type: ignore[index]
    return found


def until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not {what} within {timeout_s:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[Path, int, subprocess.CompletedProcess[str]]]:
    port = free_port()
    started = sourcebook(tmp_path, "llm", "serve", "--model", "small", "--port", str(port), "--detach")
    try:
        yield tmp_path, port, started
    finally:
        sourcebook(tmp_path, "llm", "stop", "--port", str(port), timeout=120)


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.db
def test_a_killed_vllm_is_restarted_and_readiness_follows(
    database_url: str, supervised: tuple[Path, int, subprocess.CompletedProcess[str]]
) -> None:
    data_dir, port, started = supervised
    assert started.returncode == 0, started.stderr
    assert "supervised in the background" in started.stdout
    assert "decodes" in started.stdout
    assert "tokens/s" in started.stdout
    settings = make_settings(data_dir, database_url=database_url, llm_base_url=f"http://127.0.0.1:{port}/v1")
    status = read_status(pidfile(settings, port))
    assert status is not None
    assert status.state == "ready"
    assert status.vllm_pid is not None
    assert status.restarts == 0
    speed = status.measured()
    assert speed is not None
    assert speed.decode_tokens_s > 0
    assert speed.prompt_tokens >= 200

    with running_api(settings) as (base, _):

        def readiness() -> dict[str, object]:
            body: dict[str, object] = httpx.get(f"{base}/health/ready", timeout=30).json()
            return body

        assert readiness()["status"] == "ready"
        os.killpg(status.vllm_pid, signal.SIGKILL)
        until(lambda: readiness()["status"] == "degraded", 20, "degraded")
        until(lambda: readiness()["status"] == "ready", 300, "ready again")
        until(lambda: supervisor(readiness())["state"] == "ready", 10, "supervisor ready")
        endpoint = readiness()["checks"]["model_server"][0]  # type: ignore[index]
        assert endpoint["state"] == "ok"
        assert endpoint["supervisor"]["restarts"] == 1
        assert endpoint["supervisor"]["state"] == "ready"
        assert "vLLM exited" in endpoint["supervisor"]["last_restart"]["reason"]

        # Hung: its front end stopped (SIGSTOP), so /health no longer answers; restarted all the same.
        hung = read_status(pidfile(settings, port))
        assert hung is not None
        assert hung.vllm_pid is not None
        os.kill(hung.vllm_pid, signal.SIGSTOP)
        until(lambda: readiness()["status"] == "degraded", 20, "degraded while hung")
        until(lambda: readiness()["status"] == "ready", 300, "ready after the hang")
        until(lambda: supervisor(readiness())["state"] == "ready", 10, "supervisor ready")
        last = supervisor(readiness())
        # At least the hang's restart; on a loaded machine the first start after it can fail (the old
        # server still holding the port) and count as one more.
        assert last["restarts"] >= 2  # type: ignore[operator]
        assert last["last_restart"]["at"] > endpoint["supervisor"]["last_restart"]["at"]  # type: ignore[index]

    restarted = read_status(pidfile(settings, port))
    assert restarted is not None
    assert restarted.vllm_pid is not None
    assert restarted.vllm_pid != status.vllm_pid
    doctor = check_model_server(settings)
    assert doctor.status == "ok"
    assert re.search(r"restarted [2-9] times, last at", doctor.detail), doctor.detail
    assert "tokens/s" in check_model_speed(settings).detail

    stopped = sourcebook(data_dir, "llm", "stop", "--port", str(port), timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not pidfile(settings, port).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(restarted.vllm_pid, 0)
