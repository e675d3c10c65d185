"""Checks of ``mlff_aspirin-v0``'s config against its data, before any work (``Task.validate``)
and before training (``Task.check_data``): one ConfigError naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxbench.config import check
from jaxbench.studies import analyses

from . import data
from .config import DataConfig, MLFFConfig


def validate(config: MLFFConfig, path: Path | None) -> None:
    """Refuses, before anything runs, a split the data source cannot give and frame counts it cannot hold."""
    frames = config.data
    if path is None:
        check(
            frames.split == "temporal",
            "data.split=published needs the rMD17 files: pass --data PATH (the rmd17/ folder with its splits/); "
            "generated data use data.split=temporal.",
        )
        n_test = max(1, round(frames.n_frames * frames.test_fraction))  # as data.temporal_split
        check_frames(
            frames, frames.n_frames - n_test, n_test, f"the {frames.n_frames} generated frames (data.n_frames)"
        )
        return
    data.rmd17_file(path, frames.molecule)  # DataFormatError naming what is missing
    if frames.split == "published":
        data.rmd17_splits_dir(path, 1)


def check_frames(frames: DataConfig, pool: int, test: int, source: str) -> None:
    """ConfigError naming the key when train_frames or test_frames exceed the pool or the test set."""
    test_set = "test window (data.test_fraction)" if frames.split == "temporal" else "published test set"
    check(
        frames.train_frames <= pool,
        f"data.train_frames={frames.train_frames} exceeds the {pool}-frame training pool of {source}; "
        f"set data.train_frames <= {pool}.",
    )
    check(
        frames.test_frames <= test,
        f"data.test_frames={frames.test_frames} exceeds the {test}-frame {test_set} of {source}; "
        f"set data.test_frames <= {test}.",
    )


def check_data(dataset: data.Dataset, config: MLFFConfig) -> None:
    """Refuses data that cannot train or test the configured model: too few frames, unknown species."""
    traj, frames = dataset.trajectory, config.data
    pool, test = data.pool_and_test(dataset, frames.split, frames.test_fraction)
    check_frames(frames, len(pool), len(test), f"the {traj.num_frames} frames of the data")
    unknown = sorted(set(np.unique(traj.species).tolist()) - set(config.model.species))
    check(
        not unknown,
        f"the data hold atomic numbers {unknown} that model.species={config.model.species} lacks; "
        f"set model.species={tuple(sorted({*config.model.species, *unknown}))}.",
    )
    windows, _ = analyses.time_windows(
        traj.num_frames, config.studies.window_starts, config.studies.window_widths, frames.test_fraction
    )
    smallest = min((len(p) for _, _, p in windows), default=config.training.batch_size)
    check(
        smallest >= config.training.batch_size,
        f"a time window of studies.window_widths={config.studies.window_widths} holds {smallest} of the "
        f"{traj.num_frames} frames, fewer than training.batch_size={config.training.batch_size}; "
        "use wider windows or a smaller batch.",
    )
