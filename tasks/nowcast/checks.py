"""Checks of ``nowcast-v0``'s config against its data (``Task.validate`` before any work, ``Task.check_data``
before training): one ConfigError naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxbench.config import check

from . import nowcastnet
from .config import NowcastConfig
from .schema import NowcastData


def validate(config: NowcastConfig, path: Path | None) -> None:
    """Every study's lead times exist; files must be NowcastNet case folders."""
    leads = config.data.lead_times_min
    for name in ("frame_hours", "trend_hours"):
        hours = getattr(config.studies, name)
        check(
            any(abs(60 * h - lead) < 1e-6 for h in hours for lead in leads),
            f"studies.{name}={hours}: no target frame at those hours (lead times {leads[0]:g}..{leads[-1]:g} min); "
            "raise data.n_targets or data.time_step_min.",
        )
    if path is not None:
        path = Path(path)
        split = (path / "train").is_dir() and (path / "test").is_dir()
        for folder in (path / "train", path / "test") if split else (path,):
            nowcastnet.find_cases(folder)  # DataFormatError naming what is missing


def check_data(data: NowcastData, config: NowcastConfig) -> None:
    """The frames have the configured count and size, are finite, and the test events hold rain."""
    d = config.data
    for name in ("train", "test"):
        frames = np.asarray(getattr(data, name).frames)
        check(
            frames.ndim == 4 and frames.shape[1:] == (d.n_frames, d.size, d.size),
            f"the {name} events are {frames.shape[1:]} (frames, H, W); data.n_inputs + data.n_targets = "
            f"{d.n_frames} frames of {d.size} x {d.size} are configured: set them to the data's.",
        )
        check(np.isfinite(frames).all(), f"the {name} events hold non-finite rain rates; check the files.")
    check(
        float(np.asarray(data.test.frames).max()) > 0,
        "no test event holds any rain: every CSI and centroid would be undefined.",
    )
