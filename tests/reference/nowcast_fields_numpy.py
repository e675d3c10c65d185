"""Float64 numpy references for the nowcasting field metrics of jaxbench.kernels.fields (tests only).

Written from the method's definitions (section 6 of the structural-interpretation paper), one event
and one frame at a time with plain loops, sharing no code with the package. Fields are (S, T, H, W)
arrays: S events, T lead times (frames).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def _active_pixels(prediction: np.ndarray, truth: np.ndarray, threshold: float, mode: str) -> np.ndarray:
    """The boolean active area of one frame."""
    observed, predicted = truth >= threshold, prediction >= threshold
    if mode == "observed":
        return observed
    if mode == "predicted":
        return predicted
    if mode == "union":
        return observed | predicted
    if mode == "intersection":
        return observed & predicted
    raise ValueError(mode)


def active_mae(prediction: np.ndarray, truth: np.ndarray, threshold: float, mode: str) -> dict[str, np.ndarray]:
    """Per lead time (T,): the per-event and pooled active-area MAE, active pixels and empty frames."""
    prediction, truth = np.asarray(prediction, np.float64), np.asarray(truth, np.float64)
    s, t = truth.shape[:2]
    out = {k: np.zeros(t) for k in ("per_event", "pooled", "pixels", "empty_frames", "frames")}
    for j in range(t):
        frame_maes, abs_errors = [], []
        for i in range(s):
            active = _active_pixels(prediction[i, j], truth[i, j], threshold, mode)
            errors = [abs(p - o) for p, o, a in zip(prediction[i, j].ravel(), truth[i, j].ravel(), active.ravel()) if a]
            if not errors:
                out["empty_frames"][j] += 1
                continue
            frame_maes.append(sum(errors) / len(errors))
            abs_errors += errors
        out["frames"][j] = len(frame_maes)
        out["pixels"][j] = len(abs_errors)
        out["per_event"][j] = sum(frame_maes) / len(frame_maes) if frame_maes else math.nan
        out["pooled"][j] = sum(abs_errors) / len(abs_errors) if abs_errors else math.nan
    return out


def frame_contingency(forecast: np.ndarray, observed: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """Hits A, misses B and false alarms C of one frame (the CSI's counts)."""
    a = b = c = 0
    for f, o in zip(np.ravel(forecast), np.ravel(observed)):
        a += f >= threshold and o >= threshold
        b += f < threshold <= o
        c += o < threshold <= f
    return a, b, c


def cumulative_csi(
    forecast: np.ndarray, observed: np.ndarray, threshold: float, n_bins: int, step: float
) -> dict[str, np.ndarray | int]:
    """CuCSI_T counts (T, N) over X_T (events whose every frame has A + B + C > 0), the CSIs at or
    beyond step * N per lead time, |X_T| and the CSIs (|X_T|, T).

    Binning is exact (rational CSI and step), so a CSI on a bin edge, such as 3/10 = 20 * 0.015,
    lands in the bin it opens, as [s j, s (j + 1)) says.
    """
    s, t = observed.shape[:2]
    counts = [[frame_contingency(forecast[i, j], observed[i, j], threshold) for j in range(t)] for i in range(s)]
    subset = [event for event in counts if all(sum(frame) > 0 for frame in event)]
    grid, beyond = np.zeros((t, n_bins), np.int64), np.zeros(t, np.int64)
    exact_step = Fraction(str(step))
    for event in subset:
        for j, (a, b, c) in enumerate(event):
            cell = math.floor(Fraction(a, a + b + c) / exact_step)
            if cell < n_bins:
                grid[j, cell] += 1
            else:
                beyond[j] += 1
    csi = np.array([[a / (a + b + c) for a, b, c in event] for event in subset]).reshape(-1, t)
    return {"counts": grid, "beyond": beyond, "selected": len(subset), "csi": csi}


def trend_quadrants(delta_true: np.ndarray, delta_pred: np.ndarray) -> list[dict[str, int]]:
    """Per end time (column), the points (true change, predicted change) per quadrant, one by one."""
    out = []
    for xs, ys in zip(np.asarray(delta_true, np.float64).T, np.asarray(delta_pred, np.float64).T):
        counts = dict.fromkeys(("I", "II", "III", "IV", "on_axis", "not_finite"), 0)
        for x, y in zip(xs, ys):
            if not (math.isfinite(x) and math.isfinite(y)):
                counts["not_finite"] += 1
            elif x == 0 or y == 0:
                counts["on_axis"] += 1
            elif y > 0:
                counts["I" if x > 0 else "II"] += 1
            else:
                counts["IV" if x > 0 else "III"] += 1
        out.append(counts)
    return out
