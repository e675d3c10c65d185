"""Systematic shifts, analysis cuts and nuisance priors of the FAIR Universe challenge.

A nuisance vector ``nu`` (shape (6,), ``schema.NUISANCES`` order) acts on an event pool in three
steps, mirroring the challenge's ``systematics()``:

1. ``shift_momenta``: the tau energy scale multiplies PRI_had_pt, the jet energy scale multiplies
   the jet pT's, and the MET takes the recoil of both, plus a Gaussian soft term;
2. ``apply_cuts``: events need PRI_had_pt >= 26 and PRI_lep_pt >= 20 GeV, and jets with
   pT <= 26 GeV leave the jet list;
3. ``scale_weights``: ttbar, diboson and all-background normalisations.

Everything keeps static shapes: ``apply_systematics`` drops nothing and returns a ``passed`` mask.
Momenta in GeV, angles in radians.

Pseudo-experiments pass one pool through these steps many times: ``pool_invariants`` computes
once what no nuisance changes, and ``shifted_features`` then gives the 28 features after the
systematics (what ``derived_features`` gives after ``apply_systematics``) with no trigonometry.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.errors import DataFormatError

from .derived import (
    CENTRALITY_PHI_SHIFT,
    EQUAL_ETA_DENOMINATOR,
    derived_features,
    safe_sqrt,
    vector_arctan2,
    vector_sin_cos,
    wrap_angle,
)
from .schema import (
    DER_COLUMNS,
    DIBOSON,
    HAD_PT_MIN,
    JET_PT_MIN,
    LEP_PT_MIN,
    MISSING,
    NOMINAL_NUISANCES,
    NUISANCES,
    PRI,
    PRI_COLUMNS,
    SIGNAL,
    TTBAR,
)

NUISANCE_INDEX = {name: i for i, name in enumerate(NUISANCES)}


class NuisancePrior(NamedTuple):
    """A prior ``clip(loc + scale * z, low, high)``, z ~ N(0, 1), exponentiated if lognormal."""

    name: str
    lognormal: bool
    loc: float
    scale: float
    low: float
    high: float


# The challenge draws one nuisance vector per pseudo-experiment from these (clipped, not truncated).
NUISANCE_PRIORS: tuple[NuisancePrior, ...] = (
    NuisancePrior("tes", False, 1.0, 0.01, 0.9, 1.1),
    NuisancePrior("jes", False, 1.0, 0.01, 0.9, 1.1),
    NuisancePrior("soft_met", True, 0.0, 1.0, 0.0, 5.0),
    NuisancePrior("ttbar_scale", False, 1.0, 0.02, 0.8, 1.2),
    NuisancePrior("diboson_scale", False, 1.0, 0.25, 0.0, 2.0),
    NuisancePrior("bkg_scale", False, 1.0, 0.001, 0.99, 1.01),
)


def sample_nuisances(key: jax.Array, n: int) -> jax.Array:
    """n nuisance vectors (n, 6) from ``NUISANCE_PRIORS``; row i depends only on (key, i)."""
    loc, scale, low, high = (
        jnp.array([getattr(p, field) for p in NUISANCE_PRIORS], jnp.float32)
        for field in ("loc", "scale", "low", "high")
    )
    lognormal = jnp.array([p.lognormal for p in NUISANCE_PRIORS])

    def one(i):
        gaussian = loc + scale * jax.random.normal(jax.random.fold_in(key, i), loc.shape)
        return jnp.clip(jnp.where(lognormal, jnp.exp(gaussian), gaussian), low, high)

    return jax.vmap(one)(jnp.arange(n))


def sample_mu(key: jax.Array, n: int, low: float = 0.1, high: float = 3.0) -> jax.Array:
    """n signal strengths (n,) uniform in [low, high); entry i depends only on (key, i)."""

    def one(i):
        return jax.random.uniform(jax.random.fold_in(key, i), (), minval=low, maxval=high)

    return jax.vmap(one)(jnp.arange(n))


def _with_columns(pri: jax.Array, new: dict[str, jax.Array]) -> jax.Array:
    """pri with the named PRI columns replaced."""
    columns = [new.get(name, pri[..., i]) for i, name in enumerate(PRI_COLUMNS)]
    return jnp.stack(columns, axis=-1)


def shift_momenta(pri: jax.Array, nuisances: jax.Array, met_noise: jax.Array) -> jax.Array:
    """Apply TES, JES and soft MET to the primary features (no cuts).

    PRI_had_pt *= tes; existing jets' pT and PRI_jet_all_pt *= jes (missing jets stay MISSING);
    the MET vector loses (tes - 1) x the tau pT vector and (jes - 1) x the two jets' pT vectors
    (PRI_jet_all_pt beyond them has no direction, as in the challenge) and gains
    soft_met x met_noise (GeV); PRI_met and PRI_met_phi are recomputed (phi 0 for a zero MET).

    Shapes: pri (..., 16); nuisances (6,) in NUISANCES order; met_noise (..., 2) standard normals
    (x, y) -> (..., 16).
    """
    tes, jes, soft_met = (nuisances[NUISANCE_INDEX[name]] for name in ("tes", "jes", "soft_met"))

    def col(name):
        return pri[..., PRI[name]]

    n_jets = col("PRI_n_jets")
    has_j1, has_j2 = n_jets >= 1, n_jets >= 2
    had_pt, had_phi = col("PRI_had_pt"), col("PRI_had_phi")
    j1_pt, j1_phi = col("PRI_jet_leading_pt"), col("PRI_jet_leading_phi")
    j2_pt, j2_phi = col("PRI_jet_subleading_pt"), col("PRI_jet_subleading_phi")
    j1_pt_present = jnp.where(has_j1, j1_pt, 0.0)
    j2_pt_present = jnp.where(has_j2, j2_pt, 0.0)

    met, met_phi = col("PRI_met"), col("PRI_met_phi")
    met_x = (
        met * jnp.cos(met_phi)
        - (tes - 1) * had_pt * jnp.cos(had_phi)
        - (jes - 1) * (j1_pt_present * jnp.cos(j1_phi) + j2_pt_present * jnp.cos(j2_phi))
        + soft_met * met_noise[..., 0]
    )
    met_y = (
        met * jnp.sin(met_phi)
        - (tes - 1) * had_pt * jnp.sin(had_phi)
        - (jes - 1) * (j1_pt_present * jnp.sin(j1_phi) + j2_pt_present * jnp.sin(j2_phi))
        + soft_met * met_noise[..., 1]
    )
    nonzero = met_x**2 + met_y**2 > 0
    return _with_columns(
        pri,
        {
            "PRI_had_pt": tes * had_pt,
            "PRI_jet_leading_pt": jnp.where(has_j1, jes * j1_pt, j1_pt),
            "PRI_jet_subleading_pt": jnp.where(has_j2, jes * j2_pt, j2_pt),
            "PRI_jet_all_pt": jes * col("PRI_jet_all_pt"),
            "PRI_met": safe_sqrt(met_x**2 + met_y**2),
            "PRI_met_phi": jnp.arctan2(jnp.where(nonzero, met_y, 0.0), jnp.where(nonzero, met_x, 1.0)),
        },
    )


def apply_cuts(pri: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The challenge's selection: returns (pri with low-pT jets removed, passed mask).

    passed = PRI_had_pt >= 26 and PRI_lep_pt >= 20 GeV (the boundary passes: the challenge drops
    ``< 26`` and ``< 20``). Jets with pT <= 26 GeV (boundary removed) leave the jet list while the
    event stays: jets are pT-ordered, so a failing subleading jet leaves n_jets = 1 and
    PRI_jet_all_pt = leading pT, and a failing leading jet leaves n_jets = 0, PRI_jet_all_pt = 0;
    removed jets get MISSING pT, eta and phi. The MET is not changed.

    Shapes: pri (..., 16) -> ((..., 16), (...,) bool).
    """

    def col(name):
        return pri[..., PRI[name]]

    n_jets = col("PRI_n_jets")
    j1_pt = col("PRI_jet_leading_pt")
    j1_fails = (n_jets >= 1) & (j1_pt <= JET_PT_MIN)
    j2_fails = (n_jets >= 2) & (col("PRI_jet_subleading_pt") <= JET_PT_MIN)
    drop_j2 = j1_fails | j2_fails

    new = {
        "PRI_n_jets": jnp.where(j1_fails, 0.0, jnp.where(j2_fails, 1.0, n_jets)),
        "PRI_jet_all_pt": jnp.where(j1_fails, 0.0, jnp.where(j2_fails, j1_pt, col("PRI_jet_all_pt"))),
    }
    for quantity in ("pt", "eta", "phi"):
        j1, j2 = f"PRI_jet_leading_{quantity}", f"PRI_jet_subleading_{quantity}"
        new[j1] = jnp.where(j1_fails, MISSING, col(j1))
        new[j2] = jnp.where(drop_j2, MISSING, col(j2))

    passed = (col("PRI_had_pt") >= HAD_PT_MIN) & (col("PRI_lep_pt") >= LEP_PT_MIN)
    return _with_columns(pri, new), passed


def scale_weights(weights: jax.Array, process: jax.Array, nuisances: jax.Array) -> jax.Array:
    """Weights times ttbar_scale (ttbar), diboson_scale (diboson) and bkg_scale (every background).

    Shapes: weights (...,); process (...,) int ids; nuisances (6,) -> (...,).
    """
    ttbar_scale, diboson_scale, bkg_scale = (
        nuisances[NUISANCE_INDEX[name]] for name in ("ttbar_scale", "diboson_scale", "bkg_scale")
    )
    factor = (
        jnp.where(process == TTBAR, ttbar_scale, 1.0)
        * jnp.where(process == DIBOSON, diboson_scale, 1.0)
        * jnp.where(process == SIGNAL, 1.0, bkg_scale)
    )
    return weights * factor


def apply_systematics(
    pri: jax.Array, weights: jax.Array, process: jax.Array, nuisances: jax.Array, met_noise: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Shift momenta, apply the cuts and scale the weights: returns (pri_out, weights_out, passed).

    Pure and deterministic (the soft-MET randomness is ``met_noise``), so it jits and vmaps over
    ``nuisances`` and ``met_noise``. Nothing is dropped: ``weights_out`` is 0 for events that fail
    the cuts (multiplying it by ``passed`` again is harmless), and ``pri_out`` of those events
    still holds their shifted features. See ``shift_momenta`` and ``apply_cuts``.

    Shapes: pri (n, 16); weights (n,); process (n,) int32; nuisances (6,) in NUISANCES order;
    met_noise (n, 2) standard normals -> ((n, 16), (n,), (n,) bool).
    """
    pri_out, passed = apply_cuts(shift_momenta(pri, nuisances, met_noise))
    weights_out = jnp.where(passed, scale_weights(weights, process, nuisances), 0.0)
    return pri_out, weights_out, passed


def apply_nominal(pri: jax.Array, weights: jax.Array, process: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The analysis at nominal nuisances (no soft-MET term): only the cuts act. Same outputs as
    ``apply_systematics``."""
    zero_noise = jnp.zeros(pri.shape[:-1] + (2,), pri.dtype)
    return apply_systematics(pri, weights, process, jnp.asarray(NOMINAL_NUISANCES), zero_noise)


# -- The same analysis from per-pool invariants (the pseudo-experiment hot path) ------------------
class PoolInvariants(NamedTuple):
    """What no nuisance changes in a pool's events, for ``shifted_features``. Momenta in GeV.

    Every field is one contiguous array over the events: a pseudo-experiment reads each only where
    it needs it (a column of the (n, 16) PRI array costs a pass over the whole array). ``pri`` holds the
    16 PRI columns in PRI_COLUMNS order, ``noise_x, noise_y`` the soft-MET direction; ``*_x, *_y``
    are pT vectors (jets: zero when the stored event lacks the jet), ``*_cos, *_sin`` directions,
    ``side`` the sign of sin(had_phi - lep_phi) in DER_met_phi_centrality (``shifted_*``: with the
    lepton phi shifted by CENTRALITY_PHI_SHIFT); ``vis_mass2_per_had_pt`` is DER_mass_vis^2 /
    PRI_had_pt and ``jet_mass2_per_pt2`` DER_mass_jet_jet^2 / (pT1 pT2); the last four are the DER
    values of events that keep two jets.

    Shapes: pri a tuple of 16 arrays; every array shaped like the events, (n,) or (n_blocks, block_size).
    """

    pri: tuple[jax.Array, ...]
    noise_x: jax.Array
    noise_y: jax.Array
    lep_x: jax.Array
    lep_y: jax.Array
    had_x: jax.Array
    had_y: jax.Array
    j1_x: jax.Array
    j1_y: jax.Array
    j2_x: jax.Array
    j2_y: jax.Array
    met_x: jax.Array
    met_y: jax.Array
    lep_cos: jax.Array
    lep_sin: jax.Array
    had_cos: jax.Array
    had_sin: jax.Array
    shifted_lep_cos: jax.Array
    shifted_lep_sin: jax.Array
    side: jax.Array
    shifted_side: jax.Array
    vis_mass2_per_had_pt: jax.Array
    jet_mass2_per_pt2: jax.Array
    deltar_had_lep: jax.Array
    deltaeta_jet_jet: jax.Array
    prodeta_jet_jet: jax.Array
    lep_eta_centrality: jax.Array


def pool_invariants(pri: jax.Array, met_noise: jax.Array) -> PoolInvariants:
    """The nuisance-independent parts of ``apply_systematics`` + ``derived_features`` of events.

    Computed once per pool (or per batch of pseudo-experiments), so that a pseudo-experiment
    only does what tes, jes and soft_met change (``shifted_features``): no trigonometry except
    one atan2 per event.

    Shapes: pri (..., 16); met_noise (..., 2) standard normals -> PoolInvariants of (...) arrays.
    """
    columns = tuple(pri[..., i] for i in range(len(PRI_COLUMNS)))

    def col(name):
        return columns[PRI[name]]

    lep_pt, lep_eta, lep_phi = col("PRI_lep_pt"), col("PRI_lep_eta"), col("PRI_lep_phi")
    had_pt, had_eta, had_phi = col("PRI_had_pt"), col("PRI_had_eta"), col("PRI_had_phi")
    j1_eta, j1_phi = col("PRI_jet_leading_eta"), col("PRI_jet_leading_phi")
    j2_eta, j2_phi = col("PRI_jet_subleading_eta"), col("PRI_jet_subleading_phi")
    n_jets = col("PRI_n_jets")
    j1_pt = jnp.where(n_jets >= 1, col("PRI_jet_leading_pt"), 0.0)
    j2_pt = jnp.where(n_jets >= 2, col("PRI_jet_subleading_pt"), 0.0)

    lep_sin, lep_cos = vector_sin_cos(lep_phi)
    had_sin, had_cos = vector_sin_cos(had_phi)
    j1_sin, j1_cos = vector_sin_cos(j1_phi)
    j2_sin, j2_cos = vector_sin_cos(j2_phi)
    met_sin, met_cos = vector_sin_cos(col("PRI_met_phi"))
    shifted_lep_phi = lep_phi + CENTRALITY_PHI_SHIFT
    shifted_lep_sin, shifted_lep_cos = vector_sin_cos(shifted_lep_phi)
    half_dphi_lep_had = vector_sin_cos((lep_phi - had_phi) / 2)[0]
    half_dphi_jets = vector_sin_cos((j1_phi - j2_phi) / 2)[0]

    jet_eta_gap2 = (j1_eta - j2_eta) ** 2
    jet_eta_gap2 = jnp.where(jet_eta_gap2 == 0, EQUAL_ETA_DENOMINATOR, jet_eta_gap2)
    lep_eta_offset = lep_eta - (j1_eta + j2_eta) / 2
    met = col("PRI_met")
    return PoolInvariants(
        pri=columns,
        noise_x=met_noise[..., 0],
        noise_y=met_noise[..., 1],
        lep_x=lep_pt * lep_cos,
        lep_y=lep_pt * lep_sin,
        had_x=had_pt * had_cos,
        had_y=had_pt * had_sin,
        j1_x=j1_pt * j1_cos,
        j1_y=j1_pt * j1_sin,
        j2_x=j2_pt * j2_cos,
        j2_y=j2_pt * j2_sin,
        met_x=met * met_cos,
        met_y=met * met_sin,
        lep_cos=lep_cos,
        lep_sin=lep_sin,
        had_cos=had_cos,
        had_sin=had_sin,
        shifted_lep_cos=shifted_lep_cos,
        shifted_lep_sin=shifted_lep_sin,
        side=jnp.sign(vector_sin_cos(had_phi - lep_phi)[0]),
        shifted_side=jnp.sign(vector_sin_cos(had_phi - shifted_lep_phi)[0]),
        vis_mass2_per_had_pt=4 * lep_pt * (jnp.sinh((lep_eta - had_eta) / 2) ** 2 + half_dphi_lep_had**2),
        jet_mass2_per_pt2=4 * (jnp.sinh((j1_eta - j2_eta) / 2) ** 2 + half_dphi_jets**2),
        deltar_had_lep=safe_sqrt((lep_eta - had_eta) ** 2 + wrap_angle(lep_phi - had_phi) ** 2),
        deltaeta_jet_jet=jnp.abs(j1_eta - j2_eta),
        prodeta_jet_jet=j1_eta * j2_eta,
        lep_eta_centrality=jnp.exp(-4 / jet_eta_gap2 * lep_eta_offset**2),
    )


def shifted_features(invariants: PoolInvariants, nuisances: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The 28 features (16 PRI + 12 DER) after systematics and cuts, and the ``passed`` mask.

    Equal within float32 rounding to ``event_features(apply_systematics(...)[0])`` on the pool and
    soft-MET noise of ``invariants``, and exactly equal in ``passed``; tes, jes and soft_met act on
    precomputed pT vectors, and angles enter through precomputed directions.

    Shapes: nuisances (6,) -> ((n, 28), (n,) bool).
    """
    columns, passed = shifted_feature_columns(invariants, nuisances)
    return jnp.stack(columns, axis=-1), passed


def cuts_passed(invariants: PoolInvariants, nuisances: jax.Array) -> jax.Array:
    """The ``passed`` mask of ``shifted_features`` alone (events pass the had/lep pT cuts after tes)."""
    had_pt = nuisances[NUISANCE_INDEX["tes"]] * invariants.pri[PRI["PRI_had_pt"]]
    return (had_pt >= HAD_PT_MIN) & (invariants.pri[PRI["PRI_lep_pt"]] >= LEP_PT_MIN)


def shifted_feature_columns(invariants: PoolInvariants, nuisances: jax.Array) -> tuple[list[jax.Array], jax.Array]:
    """``shifted_features`` as a list of the 28 feature columns (each shaped like the invariants),
    FEATURE_COLUMNS order."""
    tes, jes, soft_met = (nuisances[NUISANCE_INDEX[name]] for name in ("tes", "jes", "soft_met"))
    inv = invariants

    def col(name):
        return inv.pri[PRI[name]]

    lep_pt, n_jets_stored = col("PRI_lep_pt"), col("PRI_n_jets")
    stored_j1, stored_j2 = n_jets_stored >= 1, n_jets_stored >= 2

    # shift_momenta
    had_pt = tes * col("PRI_had_pt")
    j1_pt = jnp.where(stored_j1, jes * col("PRI_jet_leading_pt"), col("PRI_jet_leading_pt"))
    j2_pt = jnp.where(stored_j2, jes * col("PRI_jet_subleading_pt"), col("PRI_jet_subleading_pt"))
    met_x = inv.met_x - (tes - 1) * inv.had_x - (jes - 1) * (inv.j1_x + inv.j2_x) + soft_met * inv.noise_x
    met_y = inv.met_y - (tes - 1) * inv.had_y - (jes - 1) * (inv.j1_y + inv.j2_y) + soft_met * inv.noise_y
    met2 = met_x**2 + met_y**2
    nonzero = met2 > 0
    met = safe_sqrt(met2)
    met_phi = vector_arctan2(jnp.where(nonzero, met_y, 0.0), jnp.where(nonzero, met_x, 1.0))

    # apply_cuts
    j1_fails = stored_j1 & (j1_pt <= JET_PT_MIN)
    j2_fails = stored_j2 & (j2_pt <= JET_PT_MIN)
    drop_j2 = j1_fails | j2_fails
    has_j1, has_j2 = stored_j1 & ~j1_fails, stored_j2 & ~drop_j2
    n_jets = jnp.where(j1_fails, 0.0, jnp.where(j2_fails, 1.0, n_jets_stored))
    jet_all_pt = jnp.where(j1_fails, 0.0, jnp.where(j2_fails, j1_pt, jes * col("PRI_jet_all_pt")))
    passed = cuts_passed(invariants, nuisances)

    pri = {
        "PRI_had_pt": had_pt,
        "PRI_n_jets": n_jets,
        "PRI_jet_all_pt": jet_all_pt,
        "PRI_met": met,
        "PRI_met_phi": met_phi,
    }
    for quantity, j1_value, j2_value in (
        ("pt", j1_pt, j2_pt),
        ("eta", col("PRI_jet_leading_eta"), col("PRI_jet_subleading_eta")),
        ("phi", col("PRI_jet_leading_phi"), col("PRI_jet_subleading_phi")),
    ):
        pri[f"PRI_jet_leading_{quantity}"] = jnp.where(j1_fails, MISSING, j1_value)
        pri[f"PRI_jet_subleading_{quantity}"] = jnp.where(drop_j2, MISSING, j2_value)

    # derived_features, with the MET direction (1, 0) for a zero MET as atan2(0, 1) = 0 gives.
    met_ux = jnp.where(nonzero, met_x / jnp.where(nonzero, met, 1.0), 1.0)
    met_uy = jnp.where(nonzero, met_y / jnp.where(nonzero, met, 1.0), 0.0)
    visible_x = tes * inv.had_x + inv.lep_x + met_x
    visible_y = tes * inv.had_y + inv.lep_y + met_y
    total_x = visible_x + jnp.where(has_j1, jes * inv.j1_x, 0.0) + jnp.where(has_j2, jes * inv.j2_x, 0.0)
    total_y = visible_y + jnp.where(has_j1, jes * inv.j1_y, 0.0) + jnp.where(has_j2, jes * inv.j2_y, 0.0)

    def centrality_terms(lep_cos, lep_sin, side):
        # sin(met_phi - lep_phi) and sin(had_phi - met_phi), times side
        return ((met_uy * lep_cos - met_ux * lep_sin) * side, (inv.had_sin * met_ux - inv.had_cos * met_uy) * side)

    a, b = centrality_terms(inv.lep_cos, inv.lep_sin, inv.side)
    a_shifted, b_shifted = centrality_terms(inv.shifted_lep_cos, inv.shifted_lep_sin, inv.shifted_side)
    degenerate = a**2 + b**2 == 0
    a = jnp.where(degenerate, a_shifted, a)
    b = jnp.where(degenerate, b_shifted, b)
    norm2 = a**2 + b**2
    defined = norm2 > 0

    def two_jets(value):
        return jnp.where(has_j2, value, MISSING)

    der = {
        "DER_mass_transverse_met_lep": safe_sqrt(
            lep_pt * met * ((inv.lep_cos - met_ux) ** 2 + (inv.lep_sin - met_uy) ** 2)
        ),
        "DER_mass_vis": safe_sqrt(inv.vis_mass2_per_had_pt * had_pt),
        "DER_pt_h": safe_sqrt(visible_x**2 + visible_y**2),
        "DER_deltaeta_jet_jet": two_jets(inv.deltaeta_jet_jet),
        "DER_mass_jet_jet": two_jets(safe_sqrt(inv.jet_mass2_per_pt2 * j1_pt * j2_pt)),
        "DER_prodeta_jet_jet": two_jets(inv.prodeta_jet_jet),
        "DER_deltar_had_lep": inv.deltar_had_lep,
        "DER_pt_tot": safe_sqrt(total_x**2 + total_y**2),
        "DER_sum_pt": had_pt + lep_pt + jet_all_pt,
        "DER_pt_ratio_lep_had": lep_pt / had_pt,
        "DER_met_phi_centrality": jnp.where(defined, (a + b) / jnp.sqrt(jnp.where(defined, norm2, 1.0)), MISSING),
        "DER_lep_eta_centrality": two_jets(inv.lep_eta_centrality),
    }
    columns = [pri.get(name, inv.pri[i]) for i, name in enumerate(PRI_COLUMNS)]
    columns += [der[name] for name in DER_COLUMNS]
    return columns, passed


@jax.jit
def _systematics_with_features(pri, weights, process, nuisances, met_noise):
    pri_out, weights_out, passed = apply_systematics(pri, weights, process, nuisances, met_noise)
    return pri_out, derived_features(pri_out), weights_out, passed


@jax.jit
def _shift_with_features(pri, weights, process, nuisances, met_noise):
    pri_out = shift_momenta(pri, nuisances, met_noise)
    return pri_out, derived_features(pri_out), scale_weights(weights, process, nuisances)


def systematics_numpy(
    columns: dict[str, np.ndarray],
    weights: np.ndarray,
    process: np.ndarray,
    tes: float = 1.0,
    jes: float = 1.0,
    soft_met: float = 0.0,
    ttbar_scale: float = 1.0,
    diboson_scale: float = 1.0,
    bkg_scale: float = 1.0,
    seed: int = 0,
    dopostprocess: bool = True,
) -> dict[str, np.ndarray]:
    """The challenge's ``systematics()`` on numpy columns: PRI + DER columns, weights and process.

    ``columns`` maps every name of PRI_COLUMNS to an (n,) array. With ``dopostprocess`` the events
    that fail the cuts are dropped and low-pT jets removed (``apply_systematics``); without it every
    event is returned, shifted and reweighted only. The soft-MET noise comes from
    ``jax.random.key(seed)``, so it matches the challenge's in distribution, not event by event.
    """
    lacking = [name for name in PRI_COLUMNS if name not in columns]
    if lacking:
        raise DataFormatError(
            f"columns lacks {lacking} (found: {sorted(columns)}); systematics_numpy needs every "
            "PRI_ column of the FAIR Universe schema."
        )
    pri = np.stack([np.asarray(columns[name], np.float32) for name in PRI_COLUMNS], axis=-1)
    weights = np.asarray(weights, np.float32)
    process = np.asarray(process, np.int32)
    values = dict(
        tes=tes, jes=jes, soft_met=soft_met, ttbar_scale=ttbar_scale, diboson_scale=diboson_scale, bkg_scale=bkg_scale
    )
    nuisances = np.array([values[name] for name in NUISANCES], np.float32)
    met_noise = jax.random.normal(jax.random.key(seed), (pri.shape[0], 2))

    if dopostprocess:
        pri_out, der, weights_out, passed = _systematics_with_features(pri, weights, process, nuisances, met_noise)
        keep = np.asarray(passed)
    else:
        pri_out, der, weights_out = _shift_with_features(pri, weights, process, nuisances, met_noise)
        keep = np.ones(pri.shape[0], bool)

    pri_out, der = np.asarray(pri_out)[keep], np.asarray(der)[keep]
    result = {name: pri_out[:, i] for i, name in enumerate(PRI_COLUMNS)}
    result.update({name: der[:, i] for i, name in enumerate(DER_COLUMNS)})
    result["weights"] = np.asarray(weights_out)[keep]
    result["process"] = process[keep]
    return result


PHI_COLUMNS = ("PRI_lep_phi", "PRI_had_phi", "PRI_jet_leading_phi", "PRI_jet_subleading_phi", "PRI_met_phi")


def nuisance_at(name: str, sigmas: float) -> float:
    """The value of a nuisance ``sigmas`` prior standard deviations from its prior centre (in ln GeV
    for the lognormal soft_met), without the prior's clipping; scales stay >= 0."""
    prior = next(p for p in NUISANCE_PRIORS if p.name == name)
    value = prior.loc + sigmas * prior.scale
    return float(math.exp(value)) if prior.lognormal else max(float(value), 0.0)


def rotate_azimuth(pri: jax.Array, angle: float) -> jax.Array:
    """Every azimuth of the PRI features shifted by ``angle`` (radians), wrapped to [-pi, pi);
    missing jets (-25) stay missing."""
    cols = jnp.asarray([PRI[c] for c in PHI_COLUMNS])
    phi = jnp.asarray(pri)[:, cols]
    rotated = jnp.mod(phi + angle + jnp.pi, 2 * jnp.pi) - jnp.pi
    return jnp.asarray(pri).at[:, cols].set(jnp.where(phi == MISSING, phi, rotated))
