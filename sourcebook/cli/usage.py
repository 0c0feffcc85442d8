"""``sourcebook usage``: requests, tokens, latency and cost per tenant, model and day, with the month's forecast."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from sourcebook.cli import console, state, table
from sourcebook.db import open_database


def usage(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="One tenant (default: all).")] = None,
    since: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day, UTC (default: the month's first).")
    ] = None,
    until: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last day (default: today).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Usage and cost totals per tenant, model and day, and a forecast for the month (method stated)."""
    from sourcebook.usage import usage_report

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        report = usage_report(
            conn,
            tenant_id=tenant,
            since=since.date() if since else None,
            until=until.date() if until else None,
        )
    if as_json:
        console.print_json(json.dumps(report))
        return
    out = table("day", "tenant", "model", "requests", "cached", "tokens in", "tokens out", "cost USD", "p95 ms",
                title=f"usage {report['since']} … {report['until']}")  # fmt: skip
    for row in report["data"]:
        out.add_row(
            row["day"],
            row["tenant"],
            row["model"] or "—",
            str(row["requests"]),
            str(row["cached"]),
            f"{row['prompt_tokens']:,}",
            f"{row['completion_tokens']:,}",
            f"{row['cost_usd']:.4f}",
            f"{row['p95_latency_ms']:.0f}",
        )
    totals = report["totals"]
    out.add_row(
        "total", "", "", str(totals["requests"]), str(totals["cached"]), f"{totals['prompt_tokens']:,}",
        f"{totals['completion_tokens']:,}", f"{totals['cost_usd']:.4f}", "", style="bold",
    )  # fmt: skip
    console.print(out)
    forecast = report["forecast"]
    console.print(
        f"[bold]{forecast['month']}[/]: {forecast['month_to_date_usd']:.4f} USD so far, "
        f"{forecast['projected_usd']:.4f} USD projected ({forecast['projected_tokens']:,} tokens)"
    )
    console.print(f"[dim]forecast: {forecast['method']}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(usage)
