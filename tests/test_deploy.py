"""The deployment files, checked without a Docker engine (none runs here): docker-compose.yml parses,
its images are pinned, every long-running service has a health check, secrets come only from the
environment, only the API is published, data sits in named volumes; the Dockerfile is multi-stage
and runs as an unprivileged user."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SECRET = re.compile(r"PASSWORD|PEPPER|TOKEN|SECRET|API_KEY", re.IGNORECASE)
LONG_RUNNING = {"db", "api", "worker", "vllm", "vllm-cpu"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_expected_services_exist(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"db", "migrate", "api", "worker", "vllm", "vllm-cpu"}
    assert compose["services"]["db"]["image"].startswith("pgvector/pgvector:")
    assert compose["services"]["vllm"]["image"].startswith("vllm/vllm-openai:")
    assert compose["services"]["vllm"]["profiles"] == ["gpu"]
    assert compose["services"]["vllm-cpu"]["profiles"] == ["cpu"]
    assert compose["services"]["vllm-cpu"]["networks"]["default"]["aliases"] == ["vllm"]


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        _, _, tag = image.rpartition(":")
        assert re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


def test_long_running_services_have_health_checks_and_start_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]
        assert check["test"], name
        assert not check.get("disable"), name
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"


def test_secrets_come_from_the_environment_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", str(value)), f"{name}.{key} is inline"
        for arg in service.get("command") or []:
            assert not re.search(r"(key|token|password)=\w", str(arg), re.IGNORECASE), f"{name}: {arg}"
    url = compose["services"]["api"]["environment"]["DATABASE_URL"]
    assert "${POSTGRES_PASSWORD" in url
    example = (ROOT / "deploy" / "sourcebook.env.example").read_text()
    assert re.search(r"^(POSTGRES_PASSWORD|SOURCEBOOK_KEY_PEPPER|VLLM_API_KEY)=\S", example, re.M) is None


def test_only_the_api_is_published_and_data_is_in_named_volumes(compose: dict[str, Any]) -> None:
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"api"}
    assert compose["services"]["api"]["ports"] == ["${SOURCEBOOK_BIND:-127.0.0.1}:8000:8000"]
    named = set(compose["volumes"])
    assert {"pgdata", "sourcebook-data", "hf-cache"} <= named
    for name, service in compose["services"].items():
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            assert source in named, f"{name}: {mount} is not a named volume"


def test_the_dockerfile_is_multi_stage_non_root_and_pinned() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M)
    assert len(stages) >= 2
    for image, _ in stages:
        assert re.search(r":[^:/]*\d", image), f"{image} is not pinned to a version"
    runtime = text.rsplit("\nFROM ", 1)[1]
    assert "COPY --from=build" in runtime
    user = re.search(r"^USER\s+(\S+)", runtime, re.M)
    assert user
    assert user.group(1).split(":")[0] not in {"root", "0"}
    assert "HEALTHCHECK" in runtime
    assert "build-essential" not in runtime, "no compilers in the runtime image"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".venv-llm", ".git", ".env", "bench/.cache"} <= set(ignored)
