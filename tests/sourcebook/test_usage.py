"""Usage and cost: prices per token and per GPU second, and the month's forecast."""

from __future__ import annotations

import datetime as dt

import pytest

from sourcebook.usage import UsageEvent, forecast_month, price

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
