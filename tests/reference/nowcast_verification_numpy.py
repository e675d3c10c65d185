"""Float64 numpy loops for the verification scores that pysteps lacks (tests only; no package code).

One frame (H, W) at a time, from the definitions in jaxbench.kernels.verification's docstring.
"""

from __future__ import annotations

import math

import numpy as np


def neighbourhood_counts(forecast: np.ndarray, observed: np.ndarray, threshold: float, k: int, op: str = ">="):
    """Hits, misses, false alarms of the k x k max-pooled (stride 1, valid) frames; NaN = no event."""
    event = (lambda x: x >= threshold) if op == ">=" else (lambda x: x > threshold)
    h, w = forecast.shape
    hits = misses = false_alarms = 0
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            f = any(event(v) for v in forecast[i : i + k, j : j + k].ravel() if not math.isnan(v))
            o = any(event(v) for v in observed[i : i + k, j : j + k].ravel() if not math.isnan(v))
            hits += f and o
            misses += o and not f
            false_alarms += f and not o
    return hits, misses, false_alarms


def active_mae(forecast: np.ndarray, observed: np.ndarray, threshold: float, mode: str) -> tuple[float, int]:
    """MAE over the active pixels of one frame (NaN without any) and their number; NaN pixels are never active."""
    errors = []
    for f, o in zip(np.ravel(forecast).astype(float), np.ravel(observed).astype(float)):
        if math.isnan(f) or math.isnan(o):
            continue
        a, b = f >= threshold, o >= threshold
        active = {"observed": b, "predicted": a, "union": a or b, "intersection": a and b}[mode]
        if active:
            errors.append(abs(f - o))
    return (sum(errors) / len(errors) if errors else math.nan), len(errors)


def centroid(field: np.ndarray) -> tuple[float, float]:
    """Rain-weighted (row, column) of one frame, NaN pixels weighing 0; NaN when the frame is dry."""
    total = row = col = 0.0
    for (i, j), v in np.ndenumerate(np.asarray(field, float)):
        if not math.isnan(v) and v > 0:
            total += v
            row += i * v
            col += j * v
    return (row / total, col / total) if total > 0 else (math.nan, math.nan)


def mean(field: np.ndarray) -> float:
    """Mean of the finite pixels of one frame."""
    values = [v for v in np.ravel(field).astype(float) if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan
