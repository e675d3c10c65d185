"""Float64 numpy references for the nowcasting field metrics of jaxbench.kernels.fields (tests only).

Written from the method's definitions (section 6 of the structural-interpretation paper), one event
and one frame at a time with plain loops, sharing no code with the package. Fields are (S, T, H, W)
arrays: S events, T lead times (frames).
"""

from __future__ import annotations

import math

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
