"""Float64 numpy reference for FAIR Universe derived features and systematics (tests only).

Written apart from jaxbench.tasks.fair_universe (only the column layout and cut values are shared):
explicit (px, py, pz, E) four-vectors, one event at a time, branching on the jet count, following
the HiggsML Uncertainty Challenge's ``derived_quantities.py`` and ``systematics.py``. Also makes
random test events. Momenta in GeV, angles in radians.
"""

from __future__ import annotations

import math
from itertools import takewhile

import numpy as np

from jaxbench.tasks.fair_universe.schema import (
    DIBOSON,
    HAD_PT_MIN,
    JET_PT_MIN,
    LEP_PT_MIN,
    MISSING,
    PRI_COLUMNS,
    SIGNAL,
    TTBAR,
    ZTAUTAU,
)

JETS = ("leading", "subleading")


def four_vector(pt: float, eta: float, phi: float) -> np.ndarray:
    """(px, py, pz, E) of a massless object."""
    return np.array([pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta), pt * math.cosh(eta)])


def _pt_vector(pt: float, phi: float) -> np.ndarray:
    return np.array([pt * math.cos(phi), pt * math.sin(phi)])


def invariant_mass(*vectors: np.ndarray) -> float:
    px, py, pz, energy = sum(vectors)
    return math.sqrt(max(energy**2 - px**2 - py**2 - pz**2, 0.0))


def delta_phi(phi1: float, phi2: float) -> float:
    """phi1 - phi2 brought into [-pi, pi)."""
    d = phi1 - phi2
    while d >= math.pi:
        d -= 2 * math.pi
    while d < -math.pi:
        d += 2 * math.pi
    return d


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def met_phi_centrality(lep_phi: float, had_phi: float, met_phi: float) -> float:
    """The challenge's definition, including its retry with lep_phi + 1e-4 when 0/0."""
    for lep in (lep_phi, lep_phi + 1e-4):
        side = _sign(math.sin(had_phi - lep))
        a = math.sin(met_phi - lep) * side
        b = math.sin(had_phi - met_phi) * side
        if a * a + b * b > 0:
            return (a + b) / math.sqrt(a * a + b * b)
    return MISSING


def derived_event(e: dict[str, float]) -> list[float]:
    """The 12 DER features of one event given as {PRI name: value}, in DER_COLUMNS order."""
    lep = four_vector(e["PRI_lep_pt"], e["PRI_lep_eta"], e["PRI_lep_phi"])
    had = four_vector(e["PRI_had_pt"], e["PRI_had_eta"], e["PRI_had_phi"])
    met = np.array([*_pt_vector(e["PRI_met"], e["PRI_met_phi"]), 0.0, e["PRI_met"]])
    n_jets = int(round(e["PRI_n_jets"]))
    jets = [
        four_vector(e[f"PRI_jet_{j}_pt"], e[f"PRI_jet_{j}_eta"], e[f"PRI_jet_{j}_phi"]) for j in JETS[: min(n_jets, 2)]
    ]

    met_lep = met + lep
    transverse = (e["PRI_met"] + e["PRI_lep_pt"]) ** 2 - met_lep[0] ** 2 - met_lep[1] ** 2
    visible = lep + had + met
    total = sum(jets, visible)
    if n_jets >= 2:
        eta1, eta2 = e["PRI_jet_leading_eta"], e["PRI_jet_subleading_eta"]
        gap2 = (eta1 - eta2) ** 2 or 1e-4  # the challenge's fallback for equal etas
        mean_eta = (eta1 + eta2) / 2
        jet_pair = [
            abs(eta1 - eta2),
            invariant_mass(*jets),
            eta1 * eta2,
            math.exp(-4 / gap2 * (e["PRI_lep_eta"] - mean_eta) ** 2),
        ]
    else:
        jet_pair = [MISSING] * 4
    deltaeta, mass_jj, prodeta, lep_centrality = jet_pair

    return [
        math.sqrt(max(transverse, 0.0)),
        invariant_mass(lep, had),
        math.hypot(visible[0], visible[1]),
        deltaeta,
        mass_jj,
        prodeta,
        math.hypot(e["PRI_lep_eta"] - e["PRI_had_eta"], delta_phi(e["PRI_lep_phi"], e["PRI_had_phi"])),
        math.hypot(total[0], total[1]),
        e["PRI_had_pt"] + e["PRI_lep_pt"] + e["PRI_jet_all_pt"],
        e["PRI_lep_pt"] / e["PRI_had_pt"],
        met_phi_centrality(e["PRI_lep_phi"], e["PRI_had_phi"], e["PRI_met_phi"]),
        lep_centrality,
    ]


def derived_features(pri: np.ndarray) -> np.ndarray:
    """(n, 16) PRI -> (n, 12) DER, float64."""
    rows = [derived_event(dict(zip(PRI_COLUMNS, map(float, row)))) for row in pri]
    return np.array(rows, np.float64).reshape(len(rows), 12)


def systematics_event(
    e: dict[str, float], tes: float, jes: float, soft_met: float, noise: np.ndarray
) -> tuple[dict[str, float], bool]:
    """One event's shifted and cut PRI features, and whether it passes the selection."""
    e = dict(e)
    met = _pt_vector(e["PRI_met"], e["PRI_met_phi"])

    before = _pt_vector(e["PRI_had_pt"], e["PRI_had_phi"])
    e["PRI_had_pt"] *= tes
    met -= _pt_vector(e["PRI_had_pt"], e["PRI_had_phi"]) - before

    existing = JETS[: min(int(round(e["PRI_n_jets"])), 2)]
    for j in existing:
        before = _pt_vector(e[f"PRI_jet_{j}_pt"], e[f"PRI_jet_{j}_phi"])
        e[f"PRI_jet_{j}_pt"] *= jes
        met -= _pt_vector(e[f"PRI_jet_{j}_pt"], e[f"PRI_jet_{j}_phi"]) - before
    e["PRI_jet_all_pt"] *= jes

    met += soft_met * np.asarray(noise, np.float64)
    e["PRI_met"] = math.hypot(met[0], met[1])
    e["PRI_met_phi"] = math.atan2(met[1], met[0])

    # Jets are pT-ordered, so once one fails the threshold every later jet fails too.
    kept = list(takewhile(lambda j: e[f"PRI_jet_{j}_pt"] > JET_PT_MIN, existing))
    if len(kept) < len(existing):
        e["PRI_n_jets"] = float(len(kept))
        e["PRI_jet_all_pt"] = sum(e[f"PRI_jet_{j}_pt"] for j in kept)
        for j in existing[len(kept) :]:
            for quantity in ("pt", "eta", "phi"):
                e[f"PRI_jet_{j}_{quantity}"] = MISSING

    passed = e["PRI_had_pt"] >= HAD_PT_MIN and e["PRI_lep_pt"] >= LEP_PT_MIN
    return e, passed


def apply_systematics(
    pri: np.ndarray, weights: np.ndarray, process: np.ndarray, nuisances: np.ndarray, met_noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 (pri_out, weights_out, passed); weights_out is 0 for events that fail."""
    tes, jes, soft_met, ttbar_scale, diboson_scale, bkg_scale = map(float, nuisances)
    factor = {SIGNAL: 1.0, ZTAUTAU: bkg_scale, TTBAR: ttbar_scale * bkg_scale, DIBOSON: diboson_scale * bkg_scale}
    pri_out = np.empty(pri.shape, np.float64)
    weights_out = np.empty(len(pri), np.float64)
    passed = np.empty(len(pri), bool)
    for i, row in enumerate(pri):
        event, passed[i] = systematics_event(dict(zip(PRI_COLUMNS, map(float, row))), tes, jes, soft_met, met_noise[i])
        pri_out[i] = [event[name] for name in PRI_COLUMNS]
        weights_out[i] = float(weights[i]) * factor[int(process[i])] if passed[i] else 0.0
    return pri_out, weights_out, passed


def random_pri(rng: np.random.Generator, n: int, jet_pt_min: float = 20.0) -> np.ndarray:
    """n random events (n, 16) float32 with 0-3 pT-ordered jets of pT >= jet_pt_min (GeV).

    Lepton and tau pT start at 15 GeV, so some events fail the cuts; missing jets are MISSING and
    PRI_jet_all_pt counts every jet, the third included.
    """

    def uniform_phi():
        return rng.uniform(-math.pi, math.pi, n)

    n_jets = rng.integers(0, 4, n)
    jet_pt = np.sort(jet_pt_min + rng.exponential(40.0, (n, 3)), axis=1)[:, ::-1]
    jet_pt = np.where(np.arange(3) < n_jets[:, None], jet_pt, 0.0)
    columns = {
        "PRI_lep_pt": 15 + rng.exponential(30.0, n),
        "PRI_lep_eta": rng.uniform(-2.5, 2.5, n),
        "PRI_lep_phi": uniform_phi(),
        "PRI_had_pt": 15 + rng.exponential(30.0, n),
        "PRI_had_eta": rng.uniform(-2.5, 2.5, n),
        "PRI_had_phi": uniform_phi(),
        "PRI_n_jets": n_jets,
        "PRI_jet_all_pt": jet_pt.sum(axis=1),
        "PRI_met": rng.exponential(30.0, n),
        "PRI_met_phi": uniform_phi(),
    }
    for k, j in enumerate(JETS):
        exists = n_jets > k
        columns[f"PRI_jet_{j}_pt"] = np.where(exists, jet_pt[:, k], MISSING)
        columns[f"PRI_jet_{j}_eta"] = np.where(exists, rng.uniform(-4.5, 4.5, n), MISSING)
        columns[f"PRI_jet_{j}_phi"] = np.where(exists, uniform_phi(), MISSING)
    return np.stack([columns[name] for name in PRI_COLUMNS], axis=-1).astype(np.float32)
