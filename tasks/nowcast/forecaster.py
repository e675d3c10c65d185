"""The model as the evaluation sees it: weights with the static configs (a pytree, so ``evaluate`` jits once)."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import numpy as np

from .config import DataConfig, ModelConfig
from .schema import Events

#: The forecaster whose metrics are the headline; the baselines' sit beside it under their names.
MODEL = "model"


@partial(jax.tree_util.register_dataclass, data_fields=["weights"], meta_fields=["model", "data"])
@dataclasses.dataclass(frozen=True)
class Forecaster:
    """What ``evaluate`` needs: the trained weights and the (static) model and data configs."""

    weights: Any
    model: ModelConfig
    data: DataConfig


def true_motion(events: Events, n_inputs: int, n_targets: int) -> np.ndarray | None:
    """The generator's motion acting on each target frame's predecessor (E, n_targets, 2, H, W) px/step, or None
    when the data carry no motion."""
    motion = events.motion
    return None if motion is None else np.asarray(motion)[:, n_inputs - 1 : n_inputs - 1 + n_targets]
