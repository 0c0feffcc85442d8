"""The API tests' shared fixtures: the database and the API on a real port, for a module's ``api_settings``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sourcebook.db import Database, open_database
from sourcebook.settings import Settings
from tests.serving_helpers import running_api


@pytest.fixture(scope="module")
def database(api_settings: Settings) -> Iterator[Database]:
    with open_database(api_settings) as db:
        yield db


@pytest.fixture(scope="module")
def api(api_settings: Settings, database: Database) -> Iterator[str]:
    with running_api(api_settings) as (base, _):
        yield base
