"""Helpers for the eval command tests: the environment a `sourcebook eval` run gets."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TEST_PEPPER


def cli_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The settings of a command under test: the test's database and data folder, quiet logs, wide tables."""
    return {
        "SOURCEBOOK_DATABASE_URL": database_url,
        "SOURCEBOOK_DATA_DIR": str(data_dir),
        "SOURCEBOOK_KEY_PEPPER": TEST_PEPPER,
        "SOURCEBOOK_ENVIRONMENT": "test",
        "SOURCEBOOK_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
        **extra,
    }
