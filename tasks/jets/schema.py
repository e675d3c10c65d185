"""The jets of ``top_tagging-v0`` as arrays, and the TopLandscape column layout that loader and generator share.

TopLandscape (Kasieczka, Plehn, Thompson et al., "The Machine Learning Landscape of Top Taggers", SciPost Phys.
7, 014, 2019): 14 TeV, anti-kT R = 0.8 jets with 550 <= pT <= 650 GeV and |eta| < 2, at most 200 constituents
per jet as (E, px, py, pz) in GeV, ordered by decreasing pT and zero-padded (E = 0 means no particle).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Constituent slots per jet in the published files.
MAX_PARTICLES = 200
#: The four momentum components of a constituent, in the files' order (GeV).
MOMENTUM = ("E", "PX", "PY", "PZ")
#: The 806 columns of the published HDF5 table: 200 x (E, PX, PY, PZ) interleaved per particle, the truth top
#: four-momentum (not a model input; zero for QCD jets), the split flag ttv and the label is_signal_new.
PARTICLE_COLUMNS = tuple(f"{q}_{i}" for i in range(MAX_PARTICLES) for q in MOMENTUM)
TRUTH_COLUMNS = ("truthE", "truthPX", "truthPY", "truthPZ")
COLUMNS = (*PARTICLE_COLUMNS, *TRUTH_COLUMNS, "ttv", "is_signal_new")
#: The file names of the published splits (original HDF5, and the Particle Transformer parquet conversion).
SPLITS = ("train", "val", "test")
H5_FILES = {split: f"{split}.h5" for split in SPLITS}
PARQUET_FILES = {split: f"{split}_file.parquet" for split in SPLITS}


class Jets(NamedTuple):
    """N jets. Shapes: p4 (N, P, 4) float32 (E, px, py, pz) GeV per constituent, pT-ordered, zero rows = padding;
    label (N,) int32, 1 top, 0 QCD; truth_p4 (N, 4) float32 GeV of the matched top (zeros for QCD and when the
    source has none); ttv (N,) int32, the published split flag (-1 when the source has none)."""

    p4: np.ndarray
    label: np.ndarray
    truth_p4: np.ndarray
    ttv: np.ndarray

    @property
    def num_jets(self) -> int:
        return int(self.label.shape[0])


class JetData(NamedTuple):
    """The task's data: the three published splits, and for generated data an energy-enriched test sample (equal
    counts per jet-energy bin, same pT window and selection) for the jet-energy study, whose upper bins the
    natural test set barely fills (None for files: the study then bins the test split)."""

    train: Jets
    val: Jets
    test: Jets
    energy_test: Jets | None = None


def empty_jets(num_particles: int = MAX_PARTICLES) -> Jets:
    """Zero jets (for concatenation)."""
    return Jets(
        np.zeros((0, num_particles, 4), np.float32),
        np.zeros((0,), np.int32),
        np.zeros((0, 4), np.float32),
        np.zeros((0,), np.int32),
    )


def concatenate(parts: list[Jets]) -> Jets:
    """Jets of several parts, in order."""
    return Jets(*(np.concatenate(column) for column in zip(*parts))) if parts else empty_jets()


def take(jets: Jets, index: np.ndarray) -> Jets:
    """The jets at ``index`` (an integer array or a boolean mask)."""
    return Jets(*(np.asarray(column)[index] for column in jets))


def jet_pt_gev(jets: Jets) -> np.ndarray:
    """(N,) transverse momentum of the constituents' sum, GeV (float64)."""
    total = np.asarray(jets.p4, np.float64).sum(axis=1)
    return np.hypot(total[:, 1], total[:, 2])


def jet_energy_gev(jets: Jets) -> np.ndarray:
    """(N,) energy of the constituents' sum, GeV (float64): the jet-energy study's variable."""
    return np.asarray(jets.p4, np.float64)[..., 0].sum(axis=1)
