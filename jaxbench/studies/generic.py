"""Studies every task gets from ``per_sample_metrics``, ``features`` and ``evaluate`` alone."""

from __future__ import annotations

import jax
import numpy as np

from jaxbench.studies import analyses
from jaxbench.studies.catalogue import BREAKDOWN, CORRELATION, STABILITY
from jaxbench.studies.context import Study, StudyContext
from jaxbench.studies.table import StudyResult

# A feature with at most this many distinct values is grouped by value, not binned.
MAX_DISCRETE_VALUES = 12


def groupings(features: dict, n_bins: int) -> dict:
    """``{feature: (group id per item, labels, positions)}``: discrete features by value, the
    others in ``n_bins`` equal-count bins."""
    out = {}
    for name, values in features.items():
        values = np.asarray(values)
        distinct = np.unique(values)
        if distinct.size <= MAX_DISCRETE_VALUES:
            out[name] = (np.searchsorted(distinct, values), [f"{v:g}" for v in distinct], distinct.astype(float))
        else:
            out[name] = analyses.bin_feature(values, n_bins)
    return out


def item_values(values: np.ndarray) -> np.ndarray:
    """(N,) values of a per-sample metric: an (N, ...) one is averaged over its trailing axes (lead
    times, thresholds), NaNs skipped; an item with no finite value stays NaN."""
    values = np.asarray(values, float) if np.asarray(values).ndim > 1 else np.asarray(values)
    if values.ndim == 1:
        return values
    flat = values.reshape(values.shape[0], -1)
    count = np.sum(~np.isnan(flat), axis=1)
    return np.where(count > 0, np.nansum(flat, axis=1) / np.maximum(count, 1), np.nan)


def finite_items(ctx: StudyContext) -> tuple[dict, dict, int]:
    """Per-sample metrics (each item's value, :func:`item_values`) and features of the items whose
    metrics are all finite (a degraded run leaves some out), and how many were left out."""
    metrics = {k: item_values(v) for k, v in ctx.per_sample.items()}
    keep = np.logical_and.reduce([np.isfinite(v) for v in metrics.values()]) if metrics else np.ones(0, bool)
    features = {k: np.asarray(v)[keep] for k, v in ctx.features.items()}
    return {k: v[keep] for k, v in metrics.items()}, features, int(keep.size - keep.sum())


def _with_dropped(result: StudyResult, dropped: int) -> StudyResult:
    return StudyResult(result.study, result.rows, {**result.summary, "dropped_non_finite": dropped}, result.arrays)


def breakdown(n_bins: int = 5) -> Study:
    """Per-sample metrics grouped by every feature (by value, or in ``n_bins`` quantile bins)."""

    def run(ctx: StudyContext) -> StudyResult:
        metrics, features, dropped = finite_items(ctx)
        return _with_dropped(analyses.per_sample_breakdown(metrics, groupings(features, n_bins)), dropped)

    return Study(BREAKDOWN, run)


def correlation(max_points: int = 4000) -> Study:
    """Pearson/Spearman and a least-squares line of every per-sample metric against every feature."""

    def run(ctx: StudyContext) -> StudyResult:
        metrics, features, dropped = finite_items(ctx)
        return _with_dropped(analyses.metric_correlation(metrics, features, max_points=max_points), dropped)

    return Study(CORRELATION, run)


def stability(n_items: int = 32, n_keys: int = 8) -> Study:
    """``n_items`` evenly spaced items through ``n_keys`` evaluation keys: how much each
    per-sample metric moves when only the random draw changes."""

    def run(ctx: StudyContext) -> StudyResult:
        n = int(jax.tree.leaves(ctx.items)[0].shape[0])
        picked = np.unique(np.linspace(0, n - 1, min(n_items, n)).round().astype(int))
        items = jax.tree.map(lambda x: np.asarray(x)[picked], ctx.items)

        def predict(key):
            unit = f"stability.k{int(jax.random.randint(key, (), 0, 2**30))}"
            outputs = ctx.stage(unit, lambda: ctx.evaluate(items, key))
            return {k: np.asarray(v) for k, v in ctx.task.per_sample_metrics(outputs, items).items()}

        # One key after another: an evaluation may already span a whole data pool.
        result = analyses.prediction_stability(predict, ctx.key, n_keys, use_vmap=False)
        return StudyResult(result.study, result.rows, {**result.summary, "items": picked.tolist()}, result.arrays)

    return Study(STABILITY, run)
