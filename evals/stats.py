"""Metrics of a run with bootstrap intervals, paired comparisons of two runs, and the regression gate.

Every judge-free metric is the mean of per-item values over the items it applies to (``Scored.scores``;
None where it doesn't). Intervals come from the percentile bootstrap over items, seeded so that a report
is reproducible. Two runs of one set are compared item by item: each bootstrap round draws the same
items for both runs (a paired bootstrap), so the interval is that of the change, not of two noisy
levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evals.answers import Scored
from evals.judge import METRICS as JUDGE_METRICS

ROUNDS = 2000
CONFIDENCE = 0.95
SEED = 20261206


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    higher_is_better: bool
    gated: bool = True


METRICS = (
    Metric("correct", True),
    Metric("false_abstention", False),
    Metric("from_memory", False),
    Metric("right_abstention", True),
    Metric("exact_match", True),
    Metric("token_f1", True),
    Metric("contains_reference", True),
    Metric("citation_precision", True),
    Metric("citation_recall", True),
    Metric("abstention_precision", True),
    Metric("abstention_recall", True),
    Metric("flagged", False, gated=False),  # the guards' share: a change is news, not by itself a regression
    # ragas with the local judge (`sourcebook eval judge RUN`): reported, never gated, as the meta-eval
    # shows how little a small judge agrees with labels.
    *(Metric(f"judge_{name}", True, gated=False) for name in JUDGE_METRICS),
)
BY_NAME = {m.name: m for m in METRICS}


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric's mean over the items it applies to, its bootstrap interval, and that count."""

    mean: float | None
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True, slots=True)
class Change:
    """A metric in two runs over their shared items, and the paired interval of ``b - a``."""

    metric: str
    a: float | None
    b: float | None
    diff: float | None
    low: float | None
    high: float | None
    n: int


def _matrix(scored: Sequence[Scored], metric: str) -> tuple[np.ndarray, np.ndarray]:
    values = [s.scores.get(metric) for s in scored]
    mask = np.array([v is not None for v in values], dtype=float)
    return np.array([0.0 if v is None else float(v) for v in values]), mask


def _resampled_means(values: np.ndarray, mask: np.ndarray, draws: np.ndarray) -> np.ndarray:
    counts = mask[draws].sum(axis=1)
    sums = (values * mask)[draws].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _interval(samples: np.ndarray) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return round(float(low), 4), round(float(high), 4)


def _draws(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(ROUNDS, n))


def estimate(scored: Sequence[Scored], metric: str, *, seed: int = SEED) -> Estimate:
    """The metric's mean with its percentile-bootstrap interval."""
    values, mask = _matrix(scored, metric)
    n = int(mask.sum())
    if n == 0:
        return Estimate(None, None, None, 0)
    mean = float((values * mask).sum() / n)
    low, high = _interval(_resampled_means(values, mask, _draws(len(scored), seed)))
    return Estimate(round(mean, 4), low, high, n)


def estimates(scored: Sequence[Scored], *, seed: int = SEED) -> dict[str, Estimate]:
    return {m.name: estimate(scored, m.name, seed=seed) for m in METRICS}


def paired(a: Sequence[Scored], b: Sequence[Scored], metric: str, *, seed: int = SEED) -> Change:
    """The change of a metric from run ``a`` to run ``b`` over the items both scored, with the paired
    bootstrap interval of the change."""
    by_id = {s.id: s for s in b}
    shared = [s.id for s in a if s.id in by_id]
    left = [s for s in a if s.id in by_id]
    right = [by_id[i] for i in shared]
    va, ma = _matrix(left, metric)
    vb, mb = _matrix(right, metric)
    if not shared or ma.sum() == 0 or mb.sum() == 0:
        return Change(metric, None, None, None, None, None, len(shared))
    mean_a, mean_b = float((va * ma).sum() / ma.sum()), float((vb * mb).sum() / mb.sum())
    draws = _draws(len(shared), seed)
    low, high = _interval(_resampled_means(vb, mb, draws) - _resampled_means(va, ma, draws))
    return Change(metric, round(mean_a, 4), round(mean_b, 4), round(mean_b - mean_a, 4), low, high, len(shared))


def compare(a: Sequence[Scored], b: Sequence[Scored], *, seed: int = SEED) -> list[Change]:
    return [paired(a, b, m.name, seed=seed) for m in METRICS]


def regressions(baseline: Sequence[Scored], run: Sequence[Scored], *, tolerance: float) -> list[str]:
    """The gated metrics that got worse than the baseline run by more than ``tolerance``, where the
    paired interval of the change excludes no change (its bound on the good side is past zero).

    Why not "the run's lower bound below baseline - tolerance": on a 30-item set that bound sits some
    15 points under the mean, so an unchanged rerun would fail. The paired interval of an unchanged,
    deterministic rerun is [0, 0]."""
    found = []
    for change in compare(baseline, run):
        metric = BY_NAME[change.metric]
        if not metric.gated or change.diff is None or change.low is None or change.high is None:
            continue
        worse = -change.diff if metric.higher_is_better else change.diff
        bound = change.high if metric.higher_is_better else -change.low
        if worse > tolerance and bound < 0:
            found.append(
                f"{change.metric}: {change.a:.3f} -> {change.b:.3f} "
                f"(change {change.diff:+.3f}, 95% CI [{change.low:+.3f}, {change.high:+.3f}], {change.n} items)"
            )
    return found


def latency(scored: Sequence[Scored]) -> tuple[float | None, float | None]:
    """p50 and p95 seconds per answer, errors left out."""
    times = sorted(s.ms / 1000 for s in scored if s.result != "error")
    if not times:
        return None, None
    return round(float(np.percentile(times, 50)), 3), round(float(np.percentile(times, 95)), 3)


def most_changed(a: Sequence[Scored], b: Sequence[Scored], *, top: int) -> list[tuple[Scored, Scored, float]]:
    """The shared items whose scores moved most (sum of absolute changes over the metrics both have)."""
    by_id = {s.id: s for s in b}
    moved = []
    for left in a:
        right = by_id.get(left.id)
        if right is None:
            continue
        delta = sum(
            abs((right.scores.get(m.name) or 0.0) - (left.scores.get(m.name) or 0.0))
            for m in METRICS
            if left.scores.get(m.name) is not None or right.scores.get(m.name) is not None
        )
        moved.append((left, right, round(delta, 4)))
    moved.sort(key=lambda t: (-t[2], t[0].id))
    return [t for t in moved[:top] if t[2] > 0]
