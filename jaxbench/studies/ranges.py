"""Trusted operating ranges with uncertainty: where a metric stays on the good side of its target.

A scan gives a metric at distances ``d`` from the training range (0 inside it, negative below,
positive above), each point with an error: binomial for a fraction of ``support`` trials (coverage,
accuracy), or given. On each side, a weighted fit of a chosen trend of the metric against ``|d|``
crosses the target at the side's **limit**; a parametric bootstrap of the points (binomial redraws,
or normal with the given errors, or resampled residuals when there are none) gives its confidence
interval. The **measured** range is the run of scanned points around 0 whose values are not
significantly on the wrong side of the target (within ``z`` errors), and ``measured_significant``
the run that meets it by more than ``z`` errors.

Trends: ``linear`` (a + b|d|), ``quadratic`` (a + b|d| + c|d|²), and ``monotone`` (weighted
isotonic regression, interpolated between points and never extrapolated). A limit further than
``max_extrapolation`` times the largest scanned distance of its side is not implied by the data:
it is reported as None with ``beyond: true`` (replicas past it count as beyond in the interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxbench.errors import ConfigError

TRENDS = ("linear", "quadratic", "monotone")
GRID = 2001  # points on which each side's fitted curve is searched for its crossing


def point_errors(value: np.ndarray, support: np.ndarray | None, error: np.ndarray | None, binomial: bool) -> np.ndarray:
    """One standard error per point: given, binomial (Agresti–Coull, never 0), or NaN (unknown)."""
    if error is not None:
        return np.asarray(error, float)
    if binomial:
        if support is None:
            raise ConfigError("trusted_range: binomial errors need the support (trials) of every point.")
        n = np.asarray(support, float)
        p_tilde = (value * n + 2.0) / (n + 4.0)
        return np.sqrt(p_tilde * (1.0 - p_tilde) / (n + 4.0))
    return np.full(value.shape, np.nan)


def _polynomial_curves(x: np.ndarray, w: np.ndarray, y: np.ndarray, degree: int, grid: np.ndarray) -> np.ndarray:
    """Weighted least-squares polynomials of every replica ``y`` (B, n), evaluated on ``grid`` (G,)."""
    design = np.vander(x, degree + 1, increasing=True)  # (n, p)
    normal = design.T @ (w[:, None] * design)
    solve = np.linalg.pinv(normal) @ (design.T * w)  # (p, n): the fixed-weight estimator
    coefficients = y @ solve.T  # (B, p)
    return coefficients @ np.vander(grid, degree + 1, increasing=True).T, coefficients


def _isotonic(x: np.ndarray, w: np.ndarray, y: np.ndarray, increasing: bool) -> np.ndarray:
    """Weighted pool-adjacent-violators fit of one replica ``y`` (n,) at sorted ``x``."""
    sign = 1.0 if increasing else -1.0
    blocks: list[list[float]] = []  # [weighted mean, weight, count]
    for value, weight in zip(sign * y, w):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return sign * np.concatenate([np.full(int(c), v) for v, _, c in blocks])


def _first_crossing(grid: np.ndarray, curves: np.ndarray, target: float, sign: float) -> np.ndarray:
    """Per replica, the first grid distance where ``sign * (curve - target)`` turns negative (inf: never)."""
    margin = sign * (curves - target)  # > 0: good
    bad = margin < 0
    first = np.argmax(bad, axis=1)
    crossed = bad.any(axis=1)
    limit = np.full(curves.shape[0], np.inf)
    at_zero = crossed & (first == 0)
    limit[at_zero] = 0.0
    later = crossed & (first > 0)
    i = first[later]
    m0, m1 = margin[later, i - 1], margin[later, i]
    limit[later] = grid[i - 1] + (grid[i] - grid[i - 1]) * m0 / (m0 - m1)  # linear interpolation to the crossing
    return limit


def _side(x, y, err, replicas, target, sign, trend, max_extrapolation, cl) -> dict[str, Any]:
    """The limit of one side, its bootstrap interval and the fitted trend."""
    order = np.argsort(x, kind="stable")
    x, y, err, replicas = x[order], y[order], err[order], replicas[:, order]
    reach = float(x.max())
    cap = max_extrapolation * reach
    finite = np.isfinite(err) & (err > 0)
    w = 1.0 / err**2 if finite.all() else np.ones_like(x)
    both = np.vstack([y[None], replicas])
    if trend == "monotone":
        fits = np.stack([_isotonic(x, w, row, increasing=sign < 0) for row in both])
        grid = np.linspace(0.0, reach, GRID)
        curves = np.stack([np.interp(grid, x, row) for row in fits])
        coefficients = fits[0]
    else:
        grid = np.linspace(0.0, cap, GRID)
        curves, coefficients = _polynomial_curves(x, w, both, 1 if trend == "linear" else 2, grid)
        coefficients = coefficients[0]
    limits = _first_crossing(grid, curves, target, sign)
    estimate, boot = limits[0], limits[1:]
    lo, hi = np.percentile(boot, [50 * (1 - cl), 50 * (1 + cl)], method="nearest") if boot.size else (np.nan, np.nan)
    finite_or_none = lambda v: None if not np.isfinite(v) else float(v)  # noqa: E731
    return {
        "limit": finite_or_none(estimate),
        "interval": [finite_or_none(lo), finite_or_none(hi)],
        "beyond": bool(np.isinf(estimate)),
        "extrapolated": bool(np.isfinite(estimate) and estimate > reach),
        "reach": reach,
        "coefficients": [float(c) for c in np.atleast_1d(coefficients)],
        "beyond_fraction": float(np.mean(np.isinf(boot))) if boot.size else None,
    }


def _replicas(y, err, support, binomial, n_boot, rng, x) -> np.ndarray:
    """Bootstrap replicas (B, n) of the points."""
    if binomial:
        n = np.asarray(support, int)
        return rng.binomial(n, np.clip(y, 0.0, 1.0), size=(n_boot, y.size)) / n
    if np.isfinite(err).all():
        return y + err * rng.standard_normal((n_boot, y.size))
    # No errors: resample the residuals of a straight line through all points (|d|).
    slope, intercept = np.polyfit(np.abs(x), y, 1) if np.unique(np.abs(x)).size > 1 else (0.0, y.mean())
    fit = intercept + slope * np.abs(x)
    residual = y - fit
    return fit + rng.choice(residual, size=(n_boot, y.size), replace=True)


def _judge(v: np.ndarray, err: np.ndarray, target: float, sign: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """(not significantly bad, significantly good) per point; without an error, the plain comparison."""
    known = np.isfinite(err)
    margin = sign * (v - target) / np.where(known, err, np.inf)
    plain = sign * (v - target) >= 0
    return plain | (known & (margin >= -z)), np.where(known, margin > z, plain)


def _runs(d: np.ndarray, ok: np.ndarray) -> list[float] | None:
    """The widest run of ``ok`` points around distance 0 (sorted by distance), or None."""
    order = np.argsort(d, kind="stable")
    d, ok = d[order], ok[order]
    inside = np.flatnonzero(d == 0)
    if not inside.size or not ok[inside].all():
        return None
    lo, hi = inside[0], inside[-1]
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi < len(d) - 1 and ok[hi + 1]:
        hi += 1
    return [float(d[lo]), float(d[hi])]


def trusted_range(
    distance: Any,
    value: Any,
    target: float,
    *,
    higher_is_better: bool = True,
    error: Any = None,
    support: Any = None,
    binomial: bool = False,
    trend: str = "linear",
    cl: float = 0.68,
    z: float = 1.0,
    n_boot: int = 1000,
    max_extrapolation: float = 2.0,
    seed: int = 0,
) -> dict[str, Any]:
    """The trusted range of a scanned metric, each side's limit with a ``cl`` bootstrap interval.

    Args:
      distance, value: the scan, (n,) each; distance 0 is inside the training range.
      target: the value the metric must reach (>= if ``higher_is_better``, else <=).
      error: (n,) standard errors, or None; ``binomial`` takes them from ``support`` (n,) trials.
      trend: ``linear``, ``quadratic`` or ``monotone`` (see the module docstring).
      z: how many errors a point must be off the target to count as significantly good/bad.
      seed: the bootstrap's numpy seed (the analysis of a finished scan; no JAX key needed).
    Returns: a JSON-able dict: ``fitted`` per side (limit, interval, beyond, extrapolated, reach,
    coefficients), ``measured``, ``measured_significant``, ``measured_span`` and ``points``.
    """
    if trend not in TRENDS:
        raise ConfigError(f"trusted_range: trend must be one of {TRENDS}, got {trend!r}.")
    d, v = np.asarray(distance, float), np.asarray(value, float)
    keep = np.isfinite(v) & np.isfinite(d)
    sup = None if support is None else np.asarray(support, float)[keep]
    d, v = d[keep], v[keep]
    err = point_errors(v, sup, None if error is None else np.asarray(error, float)[keep], binomial)
    sign = 1.0 if higher_is_better else -1.0
    rng = np.random.default_rng(seed)
    replicas = _replicas(v, err, sup, binomial, n_boot, rng, d) if d.size else np.zeros((n_boot, 0))
    fitted = {}
    minimum = {"linear": 2, "quadratic": 3, "monotone": 2}[trend]
    for side, pick in (("lower", d <= 0), ("upper", d >= 0)):
        x = np.abs(d[pick])
        if np.unique(x).size < minimum:
            fitted[side] = {"limit": None, "interval": [None, None], "beyond": None, "extrapolated": None}
            continue
        result = _side(x, v[pick], err[pick], replicas[:, pick], target, sign, trend, max_extrapolation, cl)
        if side == "lower":  # report lower-side distances as negative numbers
            flip = lambda t: None if t is None else -t  # noqa: E731
            result["limit"] = flip(result["limit"])
            result["interval"] = [flip(result["interval"][1]), flip(result["interval"][0])]
            result["reach"] = -result["reach"]
        fitted[side] = result
    not_bad, significant = _judge(v, err, target, sign, z)
    verdict = np.where(significant, "good", np.where(~not_bad, "bad", "compatible"))
    return {
        "target": float(target),
        "higher_is_better": higher_is_better,
        "trend": trend,
        "cl": cl,
        "fitted": fitted,
        "measured": _runs(d, not_bad),
        "measured_significant": _runs(d, significant),
        "measured_span": [float(d.min()), float(d.max())] if d.size else None,
        "points": [
            {
                "distance": float(a),
                "value": float(b),
                "error": None if not np.isfinite(e) else float(e),
                "verdict": str(c),
            }
            for a, b, e, c in zip(d, v, err, verdict)
        ],
    }


def trusted_region(
    distance_a: Sequence[float],
    distance_b: Sequence[float],
    value: Any,
    target: float,
    *,
    higher_is_better: bool = True,
    error: Any = None,
    support: Any = None,
    binomial: bool = False,
    z: float = 1.0,
) -> dict[str, Any]:
    """A 2-D trusted map over two features: each grid cell good / compatible / bad against ``target``.

    ``value`` (and ``error`` or ``support``) are (len(a), len(b)) on the grid of the two distances.
    The trusted region is the connected set of cells around (0, 0) that are not significantly bad.
    """
    a, b = np.asarray(distance_a, float), np.asarray(distance_b, float)
    v = np.asarray(value, float)
    if v.shape != (a.size, b.size):
        raise ConfigError(f"trusted_region: value has shape {v.shape}, the grid is ({a.size}, {b.size}).")
    sup = None if support is None else np.asarray(support, float)
    err = point_errors(v, sup, None if error is None else np.asarray(error, float), binomial)
    sign = 1.0 if higher_is_better else -1.0
    not_bad, significant = (j & np.isfinite(v) for j in _judge(v, err, target, sign, z))
    verdict = np.where(significant, 2, np.where(not_bad, 1, 0))  # 2 good, 1 compatible, 0 bad
    region = np.zeros(v.shape, bool)
    start = (int(np.argmin(np.abs(a))), int(np.argmin(np.abs(b))))
    stack = [start] if not_bad[start] else []
    while stack:  # flood fill over edge neighbours
        i, j = stack.pop()
        if region[i, j]:
            continue
        region[i, j] = True
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            k, m = i + di, j + dj
            if 0 <= k < a.size and 0 <= m < b.size and not_bad[k, m] and not region[k, m]:
                stack.append((k, m))
    return {
        "target": float(target),
        "higher_is_better": higher_is_better,
        "distance_a": a.tolist(),
        "distance_b": b.tolist(),
        "value": v.tolist(),
        "error": np.where(np.isfinite(err), err, np.nan).tolist(),
        "verdict": verdict.tolist(),
        "trusted": region.tolist(),
        "trusted_fraction": float(region.mean()),
    }
