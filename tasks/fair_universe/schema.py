"""The FAIR Universe event layout: column names, processes, nuisance parameters and yields.

Events travel as one float32 array of the 16 primary features in ``PRI_COLUMNS`` order (shape
``(n, 16)``), plus per-event ``weights`` and integer ``process`` ids. Derived features are an
``(n, 12)`` array in ``DER_COLUMNS`` order. Momenta in GeV, angles in radians.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import jax

PRI_COLUMNS: tuple[str, ...] = (
    "PRI_lep_pt",
    "PRI_lep_eta",
    "PRI_lep_phi",
    "PRI_had_pt",
    "PRI_had_eta",
    "PRI_had_phi",
    "PRI_jet_leading_pt",
    "PRI_jet_leading_eta",
    "PRI_jet_leading_phi",
    "PRI_jet_subleading_pt",
    "PRI_jet_subleading_eta",
    "PRI_jet_subleading_phi",
    "PRI_n_jets",
    "PRI_jet_all_pt",
    "PRI_met",
    "PRI_met_phi",
)
DER_COLUMNS: tuple[str, ...] = (
    "DER_mass_transverse_met_lep",
    "DER_mass_vis",
    "DER_pt_h",
    "DER_deltaeta_jet_jet",
    "DER_mass_jet_jet",
    "DER_prodeta_jet_jet",
    "DER_deltar_had_lep",
    "DER_pt_tot",
    "DER_sum_pt",
    "DER_pt_ratio_lep_had",
    "DER_met_phi_centrality",
    "DER_lep_eta_centrality",
)
FEATURE_COLUMNS: tuple[str, ...] = PRI_COLUMNS + DER_COLUMNS
PRI = {name: i for i, name in enumerate(PRI_COLUMNS)}
DER = {name: i for i, name in enumerate(DER_COLUMNS)}

MISSING = -25.0  # value of a jet feature when the jet does not exist (PRI_jet_all_pt is 0 then)

# Process ids; ``labels`` is 1 for the signal (htautau) and 0 otherwise.
PROCESSES: tuple[str, ...] = ("htautau", "ztautau", "ttbar", "diboson")
SIGNAL, ZTAUTAU, TTBAR, DIBOSON = 0, 1, 2, 3

# Expected events of one pseudo-experiment at 10 fb^-1 after the analysis cuts (mu = 1).
LUMINOSITY_FB = 10.0
EXPECTED_YIELDS: dict[str, float] = {"htautau": 1015.0, "ztautau": 1002395.0, "ttbar": 44192.0, "diboson": 3783.0}

# Nuisance parameters, in the order of the nuisance vector nu (shape (6,)).
NUISANCES: tuple[str, ...] = ("tes", "jes", "soft_met", "ttbar_scale", "diboson_scale", "bkg_scale")
NOMINAL_NUISANCES = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0], np.float32)

# Analysis cuts (GeV).
HAD_PT_MIN = 26.0
LEP_PT_MIN = 20.0
JET_PT_MIN = 26.0  # jets with pT <= this are removed from the event's jet list


class EventPool(NamedTuple):
    """A weighted pool of events.

    Shapes: pri (n, 16) float32 in PRI_COLUMNS order; weights (n,) float32 expected events of one
    pseudo-experiment at mu = 1 and nominal nuisances; process (n,) int32 ids into PROCESSES.
    """

    pri: jax.Array
    weights: jax.Array
    process: jax.Array

    @property
    def labels(self) -> jax.Array:
        return (self.process == SIGNAL).astype(np.int32)

    @property
    def num_events(self) -> int:
        # Not __len__: a NamedTuple's len() must stay its number of fields (_replace relies on it).
        return int(self.pri.shape[0])


class Data(NamedTuple):
    """The two pools and the PE pool's fixed soft-MET directions (n_pool, 2)."""

    train: EventPool
    pool: EventPool
    met_noise: jax.Array


class Conditions(NamedTuple):
    """Per PE: mu_true (N,) and the six nuisances nu_true (N, 6) in ``NUISANCES`` order."""

    mu_true: jax.Array
    nu_true: jax.Array
