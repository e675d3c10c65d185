"""Jitted reductions that the structural-interpretation studies apply to per-sample metrics.

Everything here takes per-sample arrays (one value per sample, frame or pixel) and reduces them
per group, per pair of variables or per image; all functions are pure, jit-able with static
group/bin counts, and accurate in float32 (sums go through :mod:`jaxbench.kernels.segments`).

* :func:`group_stats` — count, mean, standard deviation and standard error per group.
* :func:`rank`, :func:`pearson`, :func:`spearman`, :func:`linear_fit` — association between
  a metric and a feature.
* :func:`histogram2d` — counts on a fixed grid (a metric's distribution per lead time).
* :func:`centroid` — intensity-weighted centre of mass of images.
* :func:`contingency` — hits, misses, false alarms, correct negatives and the CSI at a threshold.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxbench.kernels.segments import segment_sum


class GroupStats(NamedTuple):
    """Per-group summary of a per-sample value; each field has one entry per group.

    count: (weighted) number of samples. mean: their mean. std: population standard deviation.
    sem: standard error of the mean, std / sqrt(count) (0 for an empty group; nan-free).
    """

    count: jax.Array
    mean: jax.Array
    std: jax.Array
    sem: jax.Array


def group_stats(values: jax.Array, groups: jax.Array, num_groups: int, weights: jax.Array | None = None) -> GroupStats:
    """Mean, std and standard error of ``values`` (n,) per integer group id in [0, num_groups).

    Ids outside the range are dropped. The variance is the mean of squared deviations from the
    group mean (two passes, no cancellation from E[x^2] - E[x]^2). Empty groups get count 0 and
    mean/std/sem 0.
    """
    values = jnp.asarray(values)
    w = jnp.ones_like(values) if weights is None else jnp.asarray(weights, values.dtype)
    groups = jnp.asarray(groups, jnp.int32)
    count = segment_sum(w, groups, num_groups)
    safe = jnp.where(count > 0, count, 1.0)
    mean = segment_sum(w * values, groups, num_groups) / safe
    inside = (groups >= 0) & (groups < num_groups)
    centred = values - mean[jnp.clip(groups, 0, num_groups - 1)]
    var = segment_sum(jnp.where(inside, w * centred**2, 0.0), groups, num_groups) / safe
    std = jnp.sqrt(var)
    sem = jnp.where(count > 0, std / jnp.sqrt(safe), 0.0)
    zero = jnp.zeros_like(mean)
    return GroupStats(count, jnp.where(count > 0, mean, zero), jnp.where(count > 0, std, zero), sem)


def rank(x: jax.Array) -> jax.Array:
    """Ranks 1..n of ``x`` (n,), ties sharing their average rank (as scipy.stats.rankdata)."""
    sorted_x = jnp.sort(x)
    below = jnp.searchsorted(sorted_x, x, side="left")
    upto = jnp.searchsorted(sorted_x, x, side="right")
    return 0.5 * (below + upto + 1).astype(jnp.result_type(float))


def pearson(x: jax.Array, y: jax.Array) -> jax.Array:
    """Pearson correlation of two (n,) arrays; 0 when either is constant."""
    x = x - jnp.mean(x)
    y = y - jnp.mean(y)
    denom = jnp.sqrt(jnp.sum(x * x) * jnp.sum(y * y))
    return jnp.where(denom > 0, jnp.sum(x * y) / jnp.where(denom > 0, denom, 1.0), 0.0)


def spearman(x: jax.Array, y: jax.Array) -> jax.Array:
    """Spearman rank correlation of two (n,) arrays (Pearson of the average ranks)."""
    return pearson(rank(x), rank(y))


class LinearFit(NamedTuple):
    """Least-squares line y = intercept + slope * x, with the slope's standard error and R^2."""

    slope: jax.Array
    intercept: jax.Array
    slope_err: jax.Array
    r2: jax.Array


def linear_fit(x: jax.Array, y: jax.Array) -> LinearFit:
    """Ordinary least squares of y on x, (n,) each (n >= 3 for a finite slope error)."""
    n = x.shape[0]
    xm, ym = jnp.mean(x), jnp.mean(y)
    sxx = jnp.sum((x - xm) ** 2)
    sxy = jnp.sum((x - xm) * (y - ym))
    syy = jnp.sum((y - ym) ** 2)
    safe_sxx = jnp.where(sxx > 0, sxx, 1.0)
    slope = jnp.where(sxx > 0, sxy / safe_sxx, 0.0)
    intercept = ym - slope * xm
    residual = jnp.maximum(syy - slope * sxy, 0.0)
    slope_err = jnp.sqrt(residual / max(n - 2, 1) / safe_sxx)
    r2 = jnp.where(syy > 0, 1.0 - residual / jnp.where(syy > 0, syy, 1.0), 0.0)
    return LinearFit(slope, intercept, slope_err, r2)


def histogram2d(
    x: jax.Array, y: jax.Array, x_edges: jax.Array, y_edges: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    """Counts (len(x_edges)-1, len(y_edges)-1) of points (x, y) in half-open bins [lo, hi).

    The last bin of each axis includes its upper edge (as numpy.histogram2d); points outside
    the grid or NaN are dropped.
    """
    nx, ny = x_edges.shape[0] - 1, y_edges.shape[0] - 1
    ix = _bin_index(x, x_edges)
    iy = _bin_index(y, y_edges)
    valid = (ix >= 0) & (iy >= 0)
    flat = jnp.where(valid, ix * ny + iy, -1)
    w = jnp.ones_like(x, dtype=jnp.result_type(float)) if weights is None else weights
    return segment_sum(w, flat, nx * ny).reshape(nx, ny)


def _bin_index(v: jax.Array, edges: jax.Array) -> jax.Array:
    n = edges.shape[0] - 1
    i = jnp.searchsorted(edges, v, side="right") - 1
    i = jnp.where(v == edges[-1], n - 1, i)
    return jnp.where((i >= 0) & (i < n) & ~jnp.isnan(v), i, -1)


def centroid(images: jax.Array) -> jax.Array:
    """Intensity-weighted centre (row, column) in pixels of images (..., H, W) -> (..., 2).

    Negative intensities count as 0; an all-zero image has centroid NaN (no mass to place).
    """
    mass = jnp.maximum(images, 0.0)
    h, w = images.shape[-2:]
    rows = jnp.arange(h, dtype=mass.dtype)
    cols = jnp.arange(w, dtype=mass.dtype)
    row_profile = jnp.sum(mass, axis=-1)  # (..., H)
    col_profile = jnp.sum(mass, axis=-2)  # (..., W)
    total = jnp.sum(row_profile, axis=-1)
    row = (row_profile @ rows) / total
    col = (col_profile @ cols) / total
    return jnp.stack([row, col], axis=-1)


class Contingency(NamedTuple):
    """2x2 contingency counts of (forecast >= T, observed >= T) and the critical success index.

    csi = hits / (hits + misses + false_alarms), NaN when all three are 0 (no event either way).
    """

    hits: jax.Array
    misses: jax.Array
    false_alarms: jax.Array
    correct_negatives: jax.Array
    csi: jax.Array


def contingency(
    forecast: jax.Array,
    observed: jax.Array,
    threshold: float,
    axes: tuple[int, ...] | None = None,
    mask: jax.Array | None = None,
) -> Contingency:
    """Contingency counts over ``axes`` (default all) of forecast and observed fields.

    ``mask`` (broadcastable, bool) restricts the counting to some pixels (active-area scoping).
    """
    f = forecast >= threshold
    o = observed >= threshold
    m = jnp.ones_like(f) if mask is None else jnp.broadcast_to(mask, f.shape)

    def count(c):
        return jnp.sum(jnp.where(m & c, 1.0, 0.0), axis=axes)

    hits, misses, false_alarms = count(f & o), count(~f & o), count(f & ~o)
    correct_negatives = count(~f & ~o)
    denom = hits + misses + false_alarms
    csi = jnp.where(denom > 0, hits / jnp.where(denom > 0, denom, 1.0), jnp.nan)
    return Contingency(hits, misses, false_alarms, correct_negatives, csi)
