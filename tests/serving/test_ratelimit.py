"""Rate limits shared by API processes: two real `sourcebook serve` processes on one PostgreSQL count
one key's requests together, refuse with 429 and Retry-After, and admit again once the window moves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sourcebook.db import open_database
from tests.conftest import TEST_PEPPER, make_settings
from tests.serving_helpers import free_port, new_key

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]

LIMIT = 3
WINDOW_S = 4


def serve(database_url: str, data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "SOURCEBOOK_DATABASE_URL": database_url,
        "SOURCEBOOK_KEY_PEPPER": TEST_PEPPER,
        "SOURCEBOOK_ENVIRONMENT": "test",
        "SOURCEBOOK_DATA_DIR": str(data_dir),
        "SOURCEBOOK_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "SOURCEBOOK_RATE_LIMIT_REQUESTS": f"{LIMIT} per {WINDOW_S} second",
        "SOURCEBOOK_LOG_FORMAT": "json",
    }
    cli = [str(Path(sys.executable).parent / "sourcebook"), "serve", "--port", str(port)]
    process = subprocess.Popen(cli, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def two_apis(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    started = [serve(database_url, tmp_path, tmp_path / f"api{i}.log") for i in range(2)]
    try:
        deadline = time.monotonic() + 180
        for process, base in started:
            while True:
                assert process.poll() is None, (tmp_path / "api0.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the API processes did not start"
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
        yield started[0][1], started[1][1]
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            process.wait(timeout=30)


def test_two_api_processes_share_one_keys_request_window(
    two_apis: tuple[str, str], tmp_path: Path, database_url: str
) -> None:
    with open_database(make_settings(tmp_path, database_url=database_url)) as db:
        key = new_key(db, "shared")
        other = new_key(db, "shared")
    first, second = two_apis
    headers = {"Authorization": f"Bearer {key}"}
    # Start at the beginning of a window so the 3 admissions and the refusal fall in one window.
    time.sleep(WINDOW_S - time.time() % WINDOW_S)
    statuses = [httpx.get(f"{base}/v1/models", headers=headers).status_code for base in (first, second, first)]
    assert statuses == [200, 200, 200]
    refused = httpx.get(f"{second}/v1/models", headers=headers)
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert (body["code"], body["details"]["kind"]) == ("rate_limited", "requests")
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 2 * WINDOW_S
    assert httpx.get(f"{first}/v1/models", headers={"Authorization": f"Bearer {other}"}).status_code == 200

    time.sleep(retry_after)
    deadline = time.monotonic() + 2
    while (status := httpx.get(f"{first}/v1/models", headers=headers).status_code) == 429:
        assert time.monotonic() < deadline, "still refused after Retry-After"
        time.sleep(0.2)
    assert status == 200
