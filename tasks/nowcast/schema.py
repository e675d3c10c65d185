"""The nowcasting data types: radar rain-rate events and their true motion (generated data only).

Conventions shared by every module of the task:
- rain rate in mm/h, float32, in [0, ``RAIN_MAX_MMH``]; frames every ``time_step_min`` minutes;
- an event's frames are (T, H, W) with T = n_inputs + n_targets: frames [0, n_inputs) are observed,
  frames [n_inputs, T) are the targets (lead times (k + 1) * time_step_min for target k);
- motion fields are (2, H, W) in pixels per time step in pysteps' order: [0] = u, the displacement
  along columns (x, to the right), [1] = v, along rows (y, downwards); advection moves rain by
  (u, v) per step: x_{t+1}(row, col) = x_t(row - v, col - u) + s_t.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: NowcastNet's PNG encoding: rain = pixel / 10 - 3 mm/h, clipped to [0, RAIN_MAX_MMH].
RAIN_MAX_MMH = 128.0
PNG_SCALE = 10.0
PNG_OFFSET_MMH = 3.0


class Events(NamedTuple):
    """Nowcasting events (E of them).

    frames: (E, T, H, W) float32 rain rate (mm/h); T = n_inputs + n_targets.
    motion: (E, T, 2, H, W) float32 true advection (u, v) in pixels per step acting from frame t to t + 1
      (generated data), or None (files carry no motion).
    case: (E,) int32 case number (the folder name's number in the NowcastNet layout, the index when generated).
    """

    frames: np.ndarray
    motion: np.ndarray | None
    case: np.ndarray

    @property
    def num_events(self) -> int:
        """E."""
        return int(self.frames.shape[0])


class NowcastData(NamedTuple):
    """Training and test events, with the same frame count, size and time step."""

    train: Events
    test: Events


def pixels_to_rain(pixels: np.ndarray) -> np.ndarray:
    """NowcastNet's 16-bit PNG values to rain rate (mm/h), float32: pixel / 10 - 3, clipped to [0, 128]."""
    return np.clip(np.asarray(pixels, np.float32) / PNG_SCALE - PNG_OFFSET_MMH, 0.0, RAIN_MAX_MMH)


def rain_to_pixels(rain: np.ndarray) -> np.ndarray:
    """Rain rate (mm/h) to NowcastNet's 16-bit PNG values (the inverse of ``pixels_to_rain`` on [0, 128])."""
    rain = np.clip(np.asarray(rain, np.float64), 0.0, RAIN_MAX_MMH)
    return np.rint((rain + PNG_OFFSET_MMH) * PNG_SCALE).astype(np.uint16)
