"""The retrieval eval's report: a Markdown table and an HTML page with one bar chart per metric.

The charts are small inline SVGs written here (bars per mode, the baseline as a tick): a plotting
library would add five packages to every install for four bar charts.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from evals.metrics import METRICS

_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def _svg_bars(metric: str, values: Mapping[str, float], baseline: Mapping[str, float]) -> str:
    width, bar, gap, top, height = 420, 44, 18, 28, 160
    modes = list(values)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 40}" '
        f'role="img" aria-label="{html.escape(metric)} per mode">',
        f'<text x="4" y="18" font-family="sans-serif" font-size="14" font-weight="bold">{html.escape(metric)}</text>',
        f'<line x1="30" y1="{top + height}" x2="{width - 4}" y2="{top + height}" stroke="#999"/>',
    ]
    for i, mode in enumerate(modes):
        x = 40 + i * (bar + gap)
        h = max(0.0, min(1.0, values[mode])) * height
        colour = _COLOURS[i % len(_COLOURS)]
        svg.append(f'<rect x="{x}" y="{top + height - h:.1f}" width="{bar}" height="{h:.1f}" fill="{colour}"/>')
        svg.append(
            f'<text x="{x + bar / 2}" y="{top + height - h - 4:.1f}" font-family="sans-serif" font-size="11" '
            f'text-anchor="middle">{values[mode]:.3f}</text>'
        )
        svg.append(
            f'<text x="{x + bar / 2}" y="{top + height + 14}" font-family="sans-serif" font-size="11" '
            f'text-anchor="middle">{html.escape(mode)}</text>'
        )
        if mode in baseline:
            y = top + height - max(0.0, min(1.0, baseline[mode])) * height
            svg.append(
                f'<line x1="{x - 4}" y1="{y:.1f}" x2="{x + bar + 4}" y2="{y:.1f}" stroke="#000" stroke-width="2"/>'
            )
    svg.append("</svg>")
    return "".join(svg)


def markdown(summary: Mapping[str, object]) -> str:
    modes = summary["modes"]
    assert isinstance(modes, dict)
    lines = [
        f"# Retrieval eval: {summary['dataset']}",
        "",
        f"{summary['queries']} queries, {summary['documents']} documents ({summary['chunks']} chunks); "
        f"settings: {summary['settings']}",
        "",
        "| mode | " + " | ".join(METRICS) + " | p50 ms | p95 ms |",
        "|---" * (len(METRICS) + 3) + "|",
    ]
    for mode, result in modes.items():
        metrics, latency = result["metrics"], result["latency_ms"]
        lines.append(
            f"| {mode} | "
            + " | ".join(f"{metrics[m]:.4f}" for m in METRICS)
            + f" | {latency['p50']:.1f} | {latency['p95']:.1f} |"
        )
    regressions = summary.get("regressions") or []
    assert isinstance(regressions, list)
    lines += ["", f"Baseline: {summary.get('baseline') or 'none'}"]
    lines += [f"- **regression**: {r}" for r in regressions] or ["- no regression"]
    return "\n".join(lines) + "\n"


def html_page(summary: Mapping[str, object], baseline: Mapping[str, Mapping[str, float]]) -> str:
    modes = summary["modes"]
    assert isinstance(modes, dict)
    charts = []
    for metric in METRICS:
        values = {mode: float(result["metrics"][metric]) for mode, result in modes.items()}
        base = {mode: float(m[metric]) for mode, m in baseline.items() if metric in m}
        charts.append(_svg_bars(metric, values, base))
    table = markdown(summary)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Retrieval eval</title>"
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}svg{margin:8px}</style></head><body>"
        f"<pre>{html.escape(table)}</pre><div>{''.join(charts)}</div>"
        "<p>Bars: this run; black ticks: the baseline.</p></body></html>\n"
    )
