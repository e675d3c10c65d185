"""What evaluates a jet: the Particle Transformer of a config and input variant, with the baseline beside it."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax

from . import part
from .config import JetsConfig


def part_config(config: JetsConfig, variant: str | None = None) -> part.PartConfig:
    """The Particle Transformer of the config for ``variant`` inputs (default ``model.variant``)."""
    fields = {k: v for k, v in dataclasses.asdict(config.model).items() if k != "variant"}
    model = part.PartConfig(**fields, max_particles=config.data.max_particles)
    return part.variant_config(model, variant or config.model.variant)


@partial(jax.tree_util.register_dataclass, data_fields=["weights", "baseline"], meta_fields=["config", "variant"])
@dataclasses.dataclass(frozen=True)
class Tagger:
    """What ``evaluate`` needs: ParT weights with their (static) config and input variant, and the baseline's
    parameters."""

    weights: Any
    baseline: Any
    config: part.PartConfig
    variant: str
