"""The model as the evaluation sees it: weights with the static configs (a pytree, so ``evaluate`` jits once)."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax

from .config import DataConfig, ModelConfig


@partial(jax.tree_util.register_dataclass, data_fields=["weights"], meta_fields=["model", "data"])
@dataclasses.dataclass(frozen=True)
class Forecaster:
    """What ``evaluate`` needs: the trained weights and the (static) model and data configs."""

    weights: Any
    model: ModelConfig
    data: DataConfig
