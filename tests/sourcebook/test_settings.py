from __future__ import annotations

from pathlib import Path

import pytest

from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import DEV_KEY_PEPPER, Settings, load_settings

pytestmark = pytest.mark.unit
GOOD_PEPPER = "x" * 40


def test_defaults_are_a_working_development_setup() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.environment == "development"
    assert s.database_url is None
    assert s.key_pepper.get_secret_value() == DEV_KEY_PEPPER
    assert s.pgdata == s.data_dir / "postgres"
    assert s.embedding_dim == 384


def test_environment_variables_use_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCEBOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SOURCEBOOK_EMBEDDING_DIM", "768")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/sb")
    s = load_settings(_env_file=None)
    assert s.data_dir == tmp_path
    assert s.embedding_dim == 768
    assert s.database_url is not None
    assert s.database_url.get_secret_value() == "postgresql://u:p@db:5432/sb"


def test_prefixed_database_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCEBOOK_DATABASE_URL", "postgresql://a/one")
    monkeypatch.setenv("DATABASE_URL", "postgresql://b/two")
    s = load_settings(_env_file=None)
    assert s.database_url is not None
    assert s.database_url.get_secret_value() == "postgresql://a/one"


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SOURCEBOOK_LOG_LEVEL=DEBUG\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().log_level == "DEBUG"


def test_secrets_are_hidden_in_repr() -> None:
    s = Settings(_env_file=None, database_url="postgresql://u:hunter2@db/sb", key_pepper=GOOD_PEPPER)  # type: ignore[call-arg]
    assert "hunter2" not in repr(s)
    assert GOOD_PEPPER not in repr(s)


@pytest.mark.parametrize("environment", ["test", "production"])
def test_default_pepper_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(SourcebookError) as info:
        load_settings(_env_file=None, environment=environment, database_url="postgresql://db/sb")
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "SOURCEBOOK_KEY_PEPPER" in info.value.message


def test_short_pepper_is_refused_outside_development() -> None:
    with pytest.raises(SourcebookError, match="at least 32"):
        load_settings(_env_file=None, environment="test", key_pepper="short")


def test_production_refuses_the_embedded_database() -> None:
    with pytest.raises(SourcebookError, match="DATABASE_URL"):
        load_settings(_env_file=None, environment="production", key_pepper=GOOD_PEPPER)
    ok = load_settings(
        _env_file=None, environment="production", key_pepper=GOOD_PEPPER, database_url="postgresql://db/sb"
    )
    assert ok.environment == "production"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("database_url", "mysql://db/sb", "postgresql://"),
        ("embedding_device", "tpu", "auto, cpu, cuda"),
        ("embedding_dim", 0, "embedding_dim"),
        ("log_level", "LOUD", "log_level"),
        ("environment", "staging", "environment"),
    ],
)
def test_invalid_values_name_the_setting(field: str, value: object, fragment: str) -> None:
    with pytest.raises(SourcebookError) as info:
        load_settings(_env_file=None, **{field: value})
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert fragment in info.value.message
    assert info.value.hint


def test_pool_bounds_are_checked() -> None:
    with pytest.raises(SourcebookError, match="db_pool_min_size"):
        load_settings(_env_file=None, db_pool_min_size=5, db_pool_max_size=2)


def test_blank_database_url_means_embedded() -> None:
    assert load_settings(_env_file=None, database_url="  ").database_url is None


def test_library_env_keeps_libraries_offline_and_quiet() -> None:
    env = Settings(_env_file=None).library_env()  # type: ignore[call-arg]
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["DO_NOT_TRACK"] == "1"
    online = Settings(_env_file=None, offline=False).library_env()  # type: ignore[call-arg]
    assert "HF_HUB_OFFLINE" not in online
    assert online["DO_NOT_TRACK"] == "1"
    assert online["RAGAS_DO_NOT_TRACK"] == "true"
    assert any(Path(online["TIKTOKEN_CACHE_DIR"]).iterdir())  # ragas' judge reads llama-index's encodings


def test_rate_limit_and_price_settings_are_validated() -> None:
    with pytest.raises(SourcebookError, match="not a rate limit"):
        load_settings(_env_file=None, rate_limit_requests="lots")
    with pytest.raises(SourcebookError, match="not a rate limit"):
        load_settings(_env_file=None, tenant_rate_limits={"acme": {"tokens": "many/minute"}})
    with pytest.raises(SourcebookError, match="prices"):
        load_settings(_env_file=None, prices={"m": {"prompt_per_1k": -1}})
    settings = load_settings(_env_file=None, tenant_rate_limits={"acme": {"requests": "10/second;100/minute"}})
    assert settings.tenant_rate_limits["acme"]["requests"] == "10/second;100/minute"
