"""An answer-eval run's reports: Markdown (for CI logs) and an HTML page with matplotlib plots embedded
as PNG: each metric with its bootstrap interval, the histogram of per-item token F1 and citation
recall, latency per answer, and the change against the set's baseline run with its paired interval.

Every report's header carries the newest meta-eval (the judges against labelled data), so nobody
reads a judge's figure as truth.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals import stats, store
from evals.answers import Scored
from sourcebook.db import Conn

_BLUE, _GREY, _RED, _GREEN = "#4c72b0", "#8c8c8c", "#c44e52", "#55a868"


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # no display: reports are files
    from matplotlib import pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def _png(fig: Any) -> str:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def metric_bars(estimates: dict[str, stats.Estimate]) -> str:
    """Each metric's mean with its 95% interval as error bars (PNG, base64)."""
    shown = {k: e for k, e in estimates.items() if e.mean is not None and e.low is not None and e.high is not None}
    fig, ax = _figure(9, 4)
    names = list(shown)
    means = [float(shown[n].mean or 0) for n in names]
    errors = [
        [m - float(shown[n].low or 0) for n, m in zip(names, means, strict=True)],
        [float(shown[n].high or 0) - m for n, m in zip(names, means, strict=True)],
    ]
    ax.bar(names, means, yerr=errors, capsize=4, color=_BLUE)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over the items it applies to")
    ax.set_title("Judge-free metrics (95% bootstrap CI)")
    ax.tick_params(axis="x", labelrotation=45)
    return _png(fig)


def score_histograms(results: Sequence[Scored]) -> str:
    """Histograms of two per-item scores: token F1 and citation recall."""
    fig, _ = _figure(9, 3.2)
    fig.clf()  # two panels side by side instead of the one axes
    for n, metric in enumerate(("token_f1", "citation_recall"), start=1):
        ax = fig.add_subplot(1, 2, n)
        values = [float(v) for s in results if (v := s.scores.get(metric)) is not None]
        ax.hist(values, bins=10, range=(0, 1), color=_BLUE)
        ax.set_title(f"{metric} per item ({len(values)} items)")
        ax.set_xlabel(metric)
        ax.set_ylabel("items")
    return _png(fig)


def latency_plot(results: Sequence[Scored]) -> str:
    """Seconds per answer: a histogram, the median marked."""
    fig, ax = _figure(9, 3.2)
    seconds = [s.ms / 1000 for s in results if s.result != "error"]
    ax.hist(seconds, bins=20, color=_GREY)
    p50, p95 = stats.latency(results)
    if p50 is not None:
        ax.axvline(p50, color=_RED, label=f"p50 {p50:.2f} s")
        ax.axvline(float(p95 or p50), color=_RED, linestyle="--", label=f"p95 {p95:.2f} s")
        ax.legend()
    ax.set_xlabel("seconds per answer")
    ax.set_ylabel("answers")
    ax.set_title("Latency")
    return _png(fig)


def change_plot(changes: Sequence[stats.Change], baseline_id: int) -> str:
    """Each metric's change against the baseline run with its paired 95% interval."""
    shown = [c for c in changes if c.diff is not None and c.low is not None and c.high is not None]
    fig, ax = _figure(9, 4)
    names = [c.metric for c in shown]
    diffs = [float(c.diff or 0) for c in shown]
    errors = [
        [d - float(c.low or 0) for c, d in zip(shown, diffs, strict=True)],
        [float(c.high or 0) - d for c, d in zip(shown, diffs, strict=True)],
    ]
    good = [(d >= 0) == stats.BY_NAME[c.metric].higher_is_better or d == 0 for c, d in zip(shown, diffs, strict=True)]
    ax.bar(names, diffs, yerr=errors, capsize=4, color=[_GREEN if g else _RED for g in good])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("change (this run - baseline)")
    ax.set_title(f"Change against the baseline run {baseline_id} (paired 95% CI)")
    ax.tick_params(axis="x", labelrotation=45)
    return _png(fig)


def meta_header(meta: tuple[str, dict[str, Any], Any] | None) -> list[str]:
    """The meta-eval lines every report starts with."""
    if meta is None:
        return [
            "**Judges' trust:** no meta-eval measured yet (`sourcebook eval meta-eval`): "
            "read any judge's figure as unvalidated."
        ]
    dataset, figures, when = meta
    lines = [f"**Judges' trust** (meta-eval on {dataset}, {when:%Y-%m-%d}; agreement with the labels):", ""]
    lines += ["| judge | balanced accuracy | AUROC | items | failures |", "|---|---|---|---|---|"]
    for name, f in figures.get("judges", {}).items():
        lines.append(f"| {name} | {f['balanced_accuracy']:.3f} | {f['auroc']:.3f} | {f['items']} | {f['failures']} |")
    return lines


def markdown(
    run: store.Run,
    results: Sequence[Scored],
    changes: Sequence[stats.Change] | None,
    baseline_id: int | None,
    meta: tuple[str, dict[str, Any], Any] | None,
) -> str:
    """The run as Markdown: the meta-eval header, the metrics with intervals, the change vs the baseline."""
    cfg = run.config
    lines = [f"# Answer eval: run {run.id} of set {run.set_name} (v{run.set_version})", "", *meta_header(meta), ""]
    lines += [
        f"Prompt {cfg.prompt_version or 'default'}, model {cfg.model or 'default'}, tenant {cfg.tenant}, "
        f"{len(results)} items, {cfg.label or 'no label'}.",
        "",
    ]
    lines += ["| metric | mean | 95% CI | items |", "|---|---|---|---|"]
    for name, e in stats.estimates(results).items():
        if e.mean is not None:
            lines.append(f"| {name} | {e.mean:.3f} | [{e.low:.3f}, {e.high:.3f}] | {e.n} |")
    p50, p95 = stats.latency(results)
    lines += ["", f"Latency per answer: p50 {p50} s, p95 {p95} s.", ""]
    if changes is None or baseline_id is None:
        lines.append("No baseline run for this set (`--update-baseline`).")
    else:
        lines += [
            f"## Change against the baseline run {baseline_id}",
            "",
            "| metric | baseline | this run | change | 95% CI |",
            "|---|---|---|---|---|",
        ]
        for c in changes:
            if c.diff is not None:
                lines.append(f"| {c.metric} | {c.a:.3f} | {c.b:.3f} | {c.diff:+.3f} | [{c.low:+.3f}, {c.high:+.3f}] |")
    return "\n".join(lines) + "\n"


def html_page(title: str, text: str, plots: dict[str, str]) -> str:
    """The Markdown in a <pre> and each plot as an <img> with its name as the alt text."""
    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{png}"><figcaption>{html.escape(name)}'
        "</figcaption></figure>"
        for name, png in plots.items()
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}img{max-width:100%}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><pre>{html.escape(text)}</pre>{images}</body></html>\n"
    )


def write_run_reports(conn: Conn, run_id: int, target: Path) -> list[Path]:
    """``report.md`` and ``report.html`` of a stored run in ``target``; returns their paths."""
    run = store.load_run(conn, run_id)
    results = store.run_results(conn, run_id)
    baseline_id = store.baseline_run(conn, run.set_id)
    changes = None
    if baseline_id is not None and baseline_id != run_id:
        changes = stats.compare(store.run_results(conn, baseline_id), results)
    else:
        baseline_id = None
    text = markdown(run, results, changes, baseline_id, store.latest_meta_eval(conn))
    plots = {
        "metrics with 95% CI": metric_bars(stats.estimates(results)),
        "per-item scores": score_histograms(results),
        "latency": latency_plot(results),
    }
    if changes is not None and baseline_id is not None:
        plots["change against the baseline"] = change_plot(changes, baseline_id)
    target.mkdir(parents=True, exist_ok=True)
    md, page = target / "report.md", target / "report.html"
    md.write_text(text, encoding="utf-8")
    page.write_text(html_page(f"Answer eval run {run_id}: {run.set_name}", text, plots), encoding="utf-8")
    return [md, page]
