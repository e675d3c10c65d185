"""Float64 numpy reference for the nowcast simulator's transport (tests only): semi-Lagrangian steps of a
uniform wind with plain loops, sharing no code with the package."""

from __future__ import annotations

import math

import numpy as np


def translate_uniform(field: np.ndarray, u: float, v: float, steps: int) -> np.ndarray:
    """``field`` (H, W) after ``steps`` backward semi-Lagrangian steps by (u along columns, v along rows) pixels
    per step, bilinear, zero outside the grid."""
    x = np.asarray(field, np.float64)
    h, w = x.shape

    def at(grid, r, c):
        return grid[r, c] if 0 <= r < h and 0 <= c < w else 0.0

    for _ in range(steps):
        out = np.zeros_like(x)
        for row in range(h):
            for col in range(w):
                r, c = row - v, col - u
                r0, c0 = math.floor(r), math.floor(c)
                fr, fc = r - r0, c - c0
                out[row, col] = (1 - fr) * ((1 - fc) * at(x, r0, c0) + fc * at(x, r0, c0 + 1)) + fr * (
                    (1 - fc) * at(x, r0 + 1, c0) + fc * at(x, r0 + 1, c0 + 1)
                )
        x = out
    return x
