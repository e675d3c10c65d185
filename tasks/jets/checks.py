"""Checks of ``top_tagging-v0``'s config against its data, before any work (``Task.validate``) and before training
(``Task.check_data``): one ConfigError naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxbench.config import check

from . import topland
from .config import JetsConfig
from .schema import JetData, jet_energy_gev


def validate(config: JetsConfig, path: Path | None) -> None:
    """Generated data need jets in every split; files must be one of the two published layouts."""
    if path is None:
        for name in ("n_train", "n_val", "n_test"):
            value = getattr(config.data, name)
            check(
                value >= 2, f"data.{name}={value}: generated data need >= 2 jets per split (0 means 'all' for files)."
            )
        return
    topland.find_layout(Path(path))  # DataFormatError naming what is missing


def check_data(data: JetData, config: JetsConfig) -> None:
    """Both classes in the training and test jets, and training jets in the first jet-energy bin (the jet-energy
    study's smallest training range)."""
    for name in ("train", "test"):
        labels = np.asarray(getattr(data, name).label)
        check(
            np.any(labels == 1) and np.any(labels == 0),
            f"the {name} jets hold {int(np.sum(labels == 1))} top and {int(np.sum(labels == 0))} QCD jets; both are "
            f"needed: raise data.n_{name} (or pass files with both classes).",
        )
    edges = config.studies.energy_edges_gev
    energy = jet_energy_gev(data.train)
    check(
        np.any((energy >= edges[0]) & (energy < edges[1])),
        f"no training jet has an energy in the first jet-energy bin [{edges[0]:g}, {edges[1]:g}) GeV; "
        "set studies.energy_edges_gev to the data's range.",
    )
