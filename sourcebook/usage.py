"""Usage and cost: one row per API request (tokens, per-stage latency, model, cost), totals per
tenant, model and day, and a month-end forecast.

Cost comes from the ``prices`` setting, per model (``"*"`` for any other): per 1k prompt and
completion tokens, or per second of generation (a self-hosted GPU's hourly price / 3600). A model
without a price costs 0 and is reported as ``unpriced``, never guessed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sourcebook.db import Conn
from sourcebook.settings import PriceKind

Prices = Mapping[str, Mapping[PriceKind, float]]
# The recent days the forecast's trend line is fitted to, and the fewest it needs for a slope.
TREND_DAYS = 14
MIN_TREND_DAYS = 3


@dataclass(frozen=True, slots=True)
class UsageEvent:
    tenant_id: str
    api_key_id: str | None
    route: str
    latency_ms: float
    answer_id: uuid.UUID | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generation_s: float = 0.0
    stage_ms: Mapping[str, float] = field(default_factory=dict)
    cached: bool = False


def price(prices: Prices, event: UsageEvent) -> tuple[float, str]:
    """The request's cost in USD and the basis it was computed on."""
    if event.cached or (event.prompt_tokens == 0 and event.completion_tokens == 0 and event.generation_s == 0):
        return 0.0, "free"
    table = prices.get(event.model or "") or prices.get("*")
    if not table:
        return 0.0, "unpriced"
    if "per_gpu_second" in table:
        return event.generation_s * table["per_gpu_second"], "gpu_seconds"
    cost = event.prompt_tokens / 1000 * table.get("prompt_per_1k", 0.0)
    cost += event.completion_tokens / 1000 * table.get("completion_per_1k", 0.0)
    return cost, "tokens"


def record_usage(conn: Conn, event: UsageEvent, prices: Prices) -> float:
    cost, basis = price(prices, event)
    conn.execute(
        """
        INSERT INTO usage (tenant_id, api_key_id, answer_id, route, model, prompt_tokens, completion_tokens,
                           cost_usd, latency_ms, cached, generation_s, stage_ms, price_basis)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            event.tenant_id,
            event.api_key_id,
            event.answer_id,
            event.route,
            event.model,
            event.prompt_tokens,
            event.completion_tokens,
            cost,
            event.latency_ms,
            event.cached,
            event.generation_s,
            Jsonb(dict(event.stage_ms)),
            basis,
        ),
    )
    return cost


def daily_totals(
    conn: Conn, *, tenant_id: str | None, since: dt.date, until: dt.date | None = None
) -> list[dict[str, Any]]:
    """Totals per UTC day, tenant and model (``until`` inclusive; default: today)."""
    end = (until or dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=1)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, tenant_id AS tenant, coalesce(model, '') AS model,
                   count(*) AS requests, count(*) FILTER (WHERE cached) AS cached,
                   sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
                   sum(cost_usd) AS cost_usd, sum(generation_s) AS generation_s,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_latency_ms,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms
            FROM usage
            WHERE (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)
              AND created_at >= (%(since)s::date)::timestamp AT TIME ZONE 'UTC'
              AND created_at < (%(end)s::date)::timestamp AT TIME ZONE 'UTC'
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """,
            {"tenant": tenant_id, "since": since, "end": end},
        ).fetchall()


@dataclass(frozen=True, slots=True)
class Forecast:
    month: str
    month_to_date_usd: float
    projected_usd: float
    month_to_date_tokens: int
    projected_tokens: int
    method: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "month_to_date_usd": round(self.month_to_date_usd, 6),
            "projected_usd": round(self.projected_usd, 6),
            "month_to_date_tokens": self.month_to_date_tokens,
            "projected_tokens": self.projected_tokens,
            "method": self.method,
        }


def forecast_month(daily: Iterable[Mapping[str, Any]], today: dt.date) -> Forecast:
    """Project the month's cost and tokens: the month so far plus, for each remaining day (today
    included), a straight line fitted to the last ``TREND_DAYS`` full days (days without use count
    as 0; never below 0). With fewer than ``MIN_TREND_DAYS`` days of history, the mean day so far."""
    cost: dict[dt.date, float] = {}
    tokens: dict[dt.date, float] = {}
    for row in daily:
        day = row["day"]
        cost[day] = cost.get(day, 0.0) + float(row["cost_usd"] or 0)
        tokens[day] = tokens.get(day, 0.0) + float(row["prompt_tokens"] or 0) + float(row["completion_tokens"] or 0)
    first = today.replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    history_start = max(min(cost, default=today), today - dt.timedelta(days=TREND_DAYS))
    history = [history_start + dt.timedelta(days=i) for i in range((today - history_start).days)]
    remaining = [today + dt.timedelta(days=i) for i in range((last - today).days + 1)]
    if len(history) >= MIN_TREND_DAYS:
        method = (
            f"linear trend (least squares) over the {len(history)} full days before today, "
            "extended to the month's end; days without use count as 0, projections never below 0"
        )
    else:
        method = "mean of the days so far times the days left (too little history for a trend)"

    def project(series: dict[dt.date, float]) -> tuple[float, float]:
        so_far = sum(v for d, v in series.items() if first <= d <= today)
        before_today = sum(v for d, v in series.items() if first <= d < today)
        if len(history) >= MIN_TREND_DAYS:
            xs = np.array([(d - today).days for d in history], dtype=float)
            ys = np.array([series.get(d, 0.0) for d in history])
            slope, intercept = np.polyfit(xs, ys, 1)
            ahead = [max(0.0, intercept + slope * (d - today).days) for d in remaining]
        else:
            known = [series.get(d, 0.0) for d in (*history, today)]
            ahead = [sum(known) / len(known)] * len(remaining)
        # Today is partly known: count the larger of what happened and what the trend expects.
        ahead[0] = max(ahead[0], series.get(today, 0.0))
        return so_far, before_today + sum(ahead)

    cost_so_far, cost_projected = project(cost)
    tokens_so_far, tokens_projected = project(tokens)
    return Forecast(
        today.strftime("%Y-%m"),
        cost_so_far,
        cost_projected,
        int(tokens_so_far),
        round(tokens_projected),
        method,
    )


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "requests": sum(int(r["requests"]) for r in rows),
        "cached": sum(int(r["cached"]) for r in rows),
        "prompt_tokens": sum(int(r["prompt_tokens"]) for r in rows),
        "completion_tokens": sum(int(r["completion_tokens"]) for r in rows),
        "cost_usd": round(sum(float(r["cost_usd"]) for r in rows), 6),
    }


def row_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "day": row["day"].isoformat(),
        "cost_usd": round(float(row["cost_usd"]), 6),
        "generation_s": round(float(row["generation_s"]), 3),
        "p50_latency_ms": round(float(row["p50_latency_ms"]), 2),
        "p95_latency_ms": round(float(row["p95_latency_ms"]), 2),
    }


def usage_report(conn: Conn, *, tenant_id: str | None, since: dt.date | None, until: dt.date | None) -> dict[str, Any]:
    """Daily totals per tenant and model between ``since`` (default: the month's first day) and
    ``until`` (default: today), their sum, and the current month's forecast (one query for both)."""
    today = dt.datetime.now(dt.UTC).date()
    start, end = since or today.replace(day=1), until or today
    history_from = min(today.replace(day=1), today - dt.timedelta(days=TREND_DAYS))
    every = daily_totals(conn, tenant_id=tenant_id, since=min(start, history_from), until=max(end, today))
    rows = [r for r in every if start <= r["day"] <= end]
    return {
        "since": start.isoformat(),
        "until": end.isoformat(),
        "data": [row_json(r) for r in rows],
        "totals": summary(rows),
        "forecast": forecast_month([r for r in every if history_from <= r["day"] <= today], today).as_dict(),
    }
