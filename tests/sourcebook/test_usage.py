"""The serving platform's pure parts: prices, the month forecast, upload names, cache keys, trace ids in logs."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from answer.cache import cache_key
from answer.types import Message
from ingest.documents import local_name, safe_filename
from sourcebook.errors import SourcebookError
from sourcebook.settings import load_settings
from sourcebook.telemetry import TraceContext
from sourcebook.usage import UsageEvent, forecast_month, price
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


def event(**kw: object) -> UsageEvent:
    base: dict[str, object] = {"tenant_id": "t", "api_key_id": None, "route": "chat.completions", "latency_ms": 1.0}
    return UsageEvent(**(base | kw))  # type: ignore[arg-type]


def test_prices_per_token_per_gpu_second_and_unpriced() -> None:
    prices = {
        "qwen": {"prompt_per_1k": 0.5, "completion_per_1k": 2.0},
        "big": {"per_gpu_second": 0.01},
    }
    assert price(prices, event(model="qwen", prompt_tokens=2000, completion_tokens=500)) == (2.0, "tokens")
    assert price(prices, event(model="big", prompt_tokens=10, generation_s=30.0)) == pytest.approx((0.3, "gpu_seconds"))
    assert price(prices, event(model="other", prompt_tokens=10)) == (0.0, "unpriced")
    assert price(prices | {"*": {"prompt_per_1k": 1.0}}, event(model="other", prompt_tokens=1000)) == (1.0, "tokens")
    assert price(prices, event(model="qwen", prompt_tokens=999, cached=True)) == (0.0, "free")
    assert price(prices, event(route="retrieve")) == (0.0, "free")


def day(d: dt.date, cost: float, tokens: int = 0) -> dict[str, object]:
    return {"day": d, "cost_usd": cost, "prompt_tokens": tokens, "completion_tokens": 0}


def test_the_forecast_extends_a_linear_trend_to_the_end_of_the_month() -> None:
    today = dt.date(2026, 11, 21)
    # Cost grows by 1 a day: day k (k = 1..20) cost k; the trend says day 21 → 21, …, day 30 → 30.
    rows = [day(dt.date(2026, 11, k), float(k), 100 * k) for k in range(1, 21)]
    forecast = forecast_month(rows, today)
    assert forecast.month == "2026-11"
    assert forecast.month_to_date_usd == pytest.approx(sum(range(1, 21)))
    assert forecast.projected_usd == pytest.approx(sum(range(1, 31)), rel=1e-6)
    assert forecast.projected_tokens == pytest.approx(100 * sum(range(1, 31)), rel=1e-6)
    assert "linear trend" in forecast.method


def test_the_forecast_never_projects_below_zero_and_counts_today_as_at_least_what_happened() -> None:
    today = dt.date(2026, 11, 10)
    falling = [day(today - dt.timedelta(days=k), float(k)) for k in range(1, 10)]  # 9 … 1, heading to 0
    forecast = forecast_month([*falling, day(today, 5.0)], today)
    assert forecast.projected_usd == pytest.approx(sum(range(1, 10)) + 5.0)


def test_with_little_history_the_forecast_uses_the_mean_day() -> None:
    today = dt.date(2026, 12, 2)
    forecast = forecast_month([day(dt.date(2026, 12, 1), 3.0), day(today, 1.0)], today)
    # The mean day (2.0) for each of the 30 days from today on, after the 3.0 of yesterday.
    assert forecast.projected_usd == pytest.approx(3.0 + 30 * 2.0)
    assert forecast.method.startswith("mean of the days so far")


def test_no_usage_forecasts_nothing() -> None:
    forecast = forecast_month([], dt.date(2026, 2, 14))
    assert (forecast.month_to_date_usd, forecast.projected_usd, forecast.projected_tokens) == (0.0, 0.0, 0)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd.md", "passwd.md"),
        ("C:\\Users\\eve\\..\\secret.txt", "secret.txt"),
        ("report\x00.pdf", "report.pdf"),
        ("...", "upload"),
        (".bashrc", "bashrc"),
        (None, "upload"),
        ("a" * 500 + ".md", "a" * 200),
        ("Résumé 2025.docx", "Résumé 2025.docx"),
    ],
)
def test_upload_names_are_display_names_only(given: str | None, expected: str) -> None:
    assert safe_filename(given) == expected


def test_the_local_file_keeps_only_a_plain_extension() -> None:
    assert local_name("notes.MD") == "upload.md"
    assert local_name("x.tar.gz") == "upload.gz"
    assert local_name("evil.md/../../x") == "upload"
    assert local_name("weird.ext$") == "upload"
    assert "/" not in local_name("a/b/c.txt")


def test_cache_keys_change_with_everything_that_changes_the_answer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    base = {
        "tenant_id": "acme",
        "groups": ("staff", "everyone"),
        "question": "What is the VPN?",
        "history": (Message("user", "hi"),),
        "version": 3,
        "prompt_versions": ("answer/v2#1", "rewrite/v1#2"),
        "max_tokens": None,
        "temperature": None,
    }
    key = cache_key(settings, **base)  # type: ignore[arg-type]
    assert key == cache_key(settings, **(base | {"groups": ("everyone", "staff", "staff")}))  # type: ignore[arg-type]
    for change in (
        {"tenant_id": "globex"},
        {"groups": ("everyone",)},
        {"question": "What is the VPN"},
        {"history": ()},
        {"version": 4},
        {"prompt_versions": ("answer/v1#1", "rewrite/v1#2")},
        {"max_tokens": 10},
        {"temperature": 0.7},
    ):
        assert cache_key(settings, **(base | change)) != key, change  # type: ignore[arg-type]
    other_model = make_settings(tmp_path, llm_model="qwen")
    assert cache_key(other_model, **base) != key  # type: ignore[arg-type]


def test_rate_limit_and_price_settings_are_validated() -> None:
    with pytest.raises(SourcebookError, match="not a rate limit"):
        load_settings(_env_file=None, rate_limit_requests="lots")
    with pytest.raises(SourcebookError, match="not a rate limit"):
        load_settings(_env_file=None, tenant_rate_limits={"acme": {"tokens": "many/minute"}})
    with pytest.raises(SourcebookError, match="prices"):
        load_settings(_env_file=None, prices={"m": {"prompt_per_1k": -1}})
    settings = load_settings(_env_file=None, tenant_rate_limits={"acme": {"requests": "10/second;100/minute"}})
    assert settings.tenant_rate_limits["acme"]["requests"] == "10/second;100/minute"


def test_log_records_carry_the_trace_id_of_the_current_span() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(TraceContext())
    logger = logging.getLogger(f"test.trace.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        logger.warning("inside")
    logger.warning("outside")
    inside, outside = records
    assert inside.trace_id == format(span.get_span_context().trace_id, "032x")  # type: ignore[attr-defined]
    assert not hasattr(outside, "trace_id")
