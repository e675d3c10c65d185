"""Model inputs of ``top_tagging-v0``: the Particle Transformer's particle and pair features, and raw four-momenta.

Definitions follow Qu, Li, Qian, "Particle Transformer for Jet Tagging" (ICML 2022) and its public code:
``utils/convert_top_datasets.py`` (the jet is the sum of all constituents; Δη is multiplied by the sign of the
jet's η; Δφ is wrapped), ``data/TopLandscape/top_kin.yaml`` (the seven ``pf_features`` and their manual
standardisation ``clip((x - centre) * scale, -5, 5)``; Δη and Δφ are left as they are) and weaver-core's
``pairwise_lv_fts_pp`` (the four pair features, computed from rapidity and φ, eps = 1e-8).

Every function is written for one jet and vmapped; inputs are ``Jets.p4``: (N, P, 4) float32 (E, px, py, pz) GeV,
pT-ordered, zero rows = padding, mask = E > 0. Padded particles give zero features and mask False; a pair with a
padded member gives zero pair features. Angles in radians, momenta in GeV.

Two deliberate numerical differences from the float32 published code, both exact in real arithmetic: Δφ is
``atan2(cross, dot)`` of the transverse momenta (so it is invariant under rotations about the beam to rounding,
and lies in (-π, π]), and the pair mass² is summed from non-cancelling terms (the naive ``(E_a+E_b)² - |p_a+p_b|²``
loses all digits for collinear pairs in float32), with a particle's own E - |p| set to 0 below float32 resolution
(``MASS_RESOLUTION``), so a massless particle's self-pair has ln m² = ln 1e-8 rather than rounding noise.

"No physics prior" (``raw_features``): the model sees only (E, px, py, pz) / ``RAW_SCALE_GEV`` per particle — no
logarithms, no jet-relative or angular coordinates and no pair interactions — as in the structural-interpretation
studies that feed raw four-momenta. It is not invariant under rotations about the beam; the physics features are.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxbench.errors import DataFormatError

#: The seven per-particle features in the published ``pf_features`` order.
PARTICLE_FEATURES = ("pt_log", "e_log", "logptrel", "logerel", "deltaR", "deta", "dphi")
#: (centre, scale) of the published manual standardisation (top_kin.yaml); None = left as it is (no clip either).
STANDARDISATION = {
    "pt_log": (1.7, 0.7),
    "e_log": (2.0, 0.7),
    "logptrel": (-4.7, 0.7),
    "logerel": (-4.7, 0.7),
    "deltaR": (0.2, 4.0),
    "deta": None,
    "dphi": None,
}
#: The published clip of standardised features.
CLIP = 5.0
#: The four pair features in weaver-core's order (ln kT, ln z, ln Δ, ln m²); Δ = ΔR in (rapidity, φ).
PAIR_FEATURES = ("ln_kt", "ln_z", "ln_delta", "ln_m2")
#: The published floor inside every pair-feature logarithm (so ln x >= ln 1e-8 ≈ -18.4).
PAIR_EPS = 1e-8
#: E - |p| below this fraction of E counts as 0 (massless): float32 E and |p| carry ~4e-7 E of rounding, which would
#: otherwise make ln m² of a massless self-pair random in [-18.4, ~0] (and not rotation invariant).
MASS_RESOLUTION = 1e-6
#: GeV per unit of the raw variant's inputs (a constituent of 100 GeV has E ≈ 1).
RAW_SCALE_GEV = 100.0
#: Published number of particles the Particle Transformer sees (top_kin.yaml ``length``).
PUBLISHED_MAX_PARTICLES = 128

_TINY = 1e-30  # keeps divisions and logs of padded rows finite; their values are masked afterwards


def check_p4(p4: jax.Array, name: str = "p4") -> None:
    """DataFormatError unless ``p4`` has the (N, P, 4) shape of ``Jets.p4``."""
    if p4.ndim != 3 or p4.shape[-1] != 4:
        raise DataFormatError(
            f"{name} has shape {tuple(p4.shape)}; expected (N, P, 4) (E, px, py, pz) GeV as in Jets.p4 — "
            f"add a jet axis with p4[None] for a single jet."
        )


def _safe_sqrt(x):
    # sqrt with a finite gradient at 0 (padding) — the gradient of jnp.sqrt there is inf.
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _pt(p4):
    return _safe_sqrt(p4[..., 1] ** 2 + p4[..., 2] ** 2)


def _pseudorapidity(p4, pt):
    return jnp.arcsinh(p4[..., 3] / jnp.maximum(pt, _TINY))


def _rapidity(p4):
    """0.5 ln((E + pz)/(E - pz)) as weaver-core writes it (log1p form, floor 1e-20 on E - pz)."""
    e, pz = p4[..., 0], p4[..., 3]
    return 0.5 * jnp.log1p(2 * pz / jnp.maximum(e - pz, 1e-20))


def _delta_phi(a, b):
    """φ_a - φ_b in (-π, π] from the transverse momenta (rotation-invariant to rounding). Shapes: (..., 4)."""
    cross = a[..., 2] * b[..., 1] - a[..., 1] * b[..., 2]  # |a||b| sin(φ_a - φ_b)
    dot = a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]
    return jnp.arctan2(cross, dot)


def _jet_one(p4):
    mask = p4[:, 0] > 0
    return jnp.sum(jnp.where(mask[:, None], p4, 0.0), axis=0)


def _jet_kinematics_one(p4):
    jet = _jet_one(p4)
    pt = _pt(jet)
    m2 = jet[0] ** 2 - (jet[1] ** 2 + jet[2] ** 2 + jet[3] ** 2)
    return {
        "pt": pt,
        "eta": _pseudorapidity(jet, pt),
        "phi": jnp.arctan2(jet[2], jet[1]),
        "mass": _safe_sqrt(m2),
        "energy": jet[0],
    }


@jax.jit
def jet_kinematics(p4: jax.Array) -> dict[str, jax.Array]:
    """The jet (sum of all constituents): pt, eta (pseudorapidity), phi, mass (>= 0), energy — each (N,), GeV/rad."""
    check_p4(p4)
    return jax.vmap(_jet_kinematics_one)(jnp.asarray(p4, jnp.float32))


def _standardise(name, value):
    rule = STANDARDISATION[name]
    if rule is None:
        return value
    centre, scale = rule
    return jnp.clip((value - centre) * scale, -CLIP, CLIP)


def _particle_features_one(p4, max_particles):
    jet = _jet_one(p4)  # from all constituents, as the conversion script does, before truncation
    p4 = p4[:max_particles]
    mask = p4[:, 0] > 0
    jet_pt = _pt(jet)
    jet_eta = _pseudorapidity(jet, jet_pt)
    eta_sign = jnp.where(jet_eta < 0, -1.0, 1.0)  # sign(0) counts as +1 (convert_top_datasets.py)
    pt = _pt(p4)
    energy = p4[:, 0]
    deta = (_pseudorapidity(p4, pt) - jet_eta) * eta_sign
    dphi = _delta_phi(p4, jet[None, :])
    safe_pt, safe_e = jnp.maximum(pt, _TINY), jnp.maximum(energy, _TINY)
    values = {
        "pt_log": jnp.log(safe_pt),
        "e_log": jnp.log(safe_e),
        "logptrel": jnp.log(safe_pt / jnp.maximum(jet_pt, _TINY)),
        "logerel": jnp.log(safe_e / jnp.maximum(jet[0], _TINY)),
        "deltaR": jnp.hypot(deta, dphi),
        "deta": deta,
        "dphi": dphi,
    }
    x = jnp.stack([_standardise(name, values[name]) for name in PARTICLE_FEATURES], axis=-1)
    return jnp.where(mask[:, None], x, 0.0), mask


@partial(jax.jit, static_argnames="max_particles")
def particle_features(p4: jax.Array, max_particles: int = PUBLISHED_MAX_PARTICLES) -> tuple[jax.Array, jax.Array]:
    """The seven standardised ParT particle features of the leading ``max_particles`` constituents.

    Shapes: p4 (N, P, 4) -> x (N, M, 7) in ``PARTICLE_FEATURES`` order, mask (N, M) bool, M = min(P, max_particles).
    The jet axis is the sum of all P constituents (also those beyond ``max_particles``).
    """
    check_p4(p4)
    return jax.vmap(partial(_particle_features_one, max_particles=max_particles))(jnp.asarray(p4, jnp.float32))


def _mass_term(energy, momentum):
    """E - |p|, zero below the float32 resolution ``MASS_RESOLUTION`` x E (a massless particle's rounding noise)."""
    k = energy - momentum
    return jnp.where(k > MASS_RESOLUTION * energy, k, 0.0)


def _pair_mass2(a, b):
    """m² of a + b without cancellation: m_a² + m_b² + 2(E_a E_b - p_a·p_b), the bracket split into
    (E_a - |p_a|) E_b + |p_a| (E_b - |p_b|) + |p_a||p_b| |n_a - n_b|² / 2. Shapes: (..., 4) -> (...)."""
    pa, pb = _safe_sqrt(jnp.sum(a[..., 1:] ** 2, -1)), _safe_sqrt(jnp.sum(b[..., 1:] ** 2, -1))
    na = a[..., 1:] / jnp.maximum(pa, _TINY)[..., None]
    nb = b[..., 1:] / jnp.maximum(pb, _TINY)[..., None]
    ka, kb = _mass_term(a[..., 0], pa), _mass_term(b[..., 0], pb)
    ma2, mb2 = ka * (a[..., 0] + pa), kb * (b[..., 0] + pb)
    angle = jnp.sum((na - nb) ** 2, -1)
    return ma2 + mb2 + 2 * (ka * b[..., 0] + pa * kb) + pa * pb * angle


def _pair_features_one(p4):
    mask = p4[:, 0] > 0
    pt = _pt(p4)
    rapidity = _rapidity(p4)
    a, b = p4[:, None, :], p4[None, :, :]
    self_pair = jnp.eye(p4.shape[0], dtype=bool)  # Δ = 0 exactly (a fused multiply-add leaves ~1e-9 in Δφ)
    dphi = jnp.where(self_pair, 0.0, _delta_phi(a, b))
    delta = _safe_sqrt((rapidity[:, None] - rapidity[None, :]) ** 2 + dphi**2)
    pt_min = jnp.minimum(pt[:, None], pt[None, :])
    pt_sum = pt[:, None] + pt[None, :]
    features = jnp.stack(
        [
            jnp.log(jnp.maximum(pt_min * delta, PAIR_EPS)),
            jnp.log(jnp.maximum(pt_min / jnp.maximum(pt_sum, PAIR_EPS), PAIR_EPS)),
            jnp.log(jnp.maximum(delta, PAIR_EPS)),
            jnp.log(jnp.maximum(_pair_mass2(a, b), PAIR_EPS)),
        ],
        axis=-1,
    )
    pair_mask = mask[:, None] & mask[None, :]
    return jnp.where(pair_mask[..., None], features, 0.0)


@jax.jit
def pair_features(p4: jax.Array) -> jax.Array:
    """ParT pair features of every ordered pair (a, b), self-pairs included (as published).

    Shapes: p4 (N, P, 4) -> (N, P, P, 4) in ``PAIR_FEATURES`` order: ln kT (kT = min(pT) Δ, GeV), ln z
    (min(pT)/(pT_a + pT_b)), ln Δ (Δ = hypot(Δy, Δφ)), ln m² (GeV², of p_a + p_b); each log's argument is floored at
    ``PAIR_EPS``; zero where a or b is padding. Pass the truncated p4 (``p4[:, :max_particles]``).
    """
    check_p4(p4)
    return jax.vmap(_pair_features_one)(jnp.asarray(p4, jnp.float32))


@partial(jax.jit, static_argnames=("max_particles", "scale_gev"))
def raw_features(
    p4: jax.Array, max_particles: int = PUBLISHED_MAX_PARTICLES, scale_gev: float = RAW_SCALE_GEV
) -> tuple[jax.Array, jax.Array]:
    """(E, px, py, pz) / ``scale_gev`` of the leading ``max_particles`` constituents (the "no physics prior" input).

    Shapes: p4 (N, P, 4) -> x (N, M, 4), mask (N, M) bool. Padded rows stay zero.
    """
    check_p4(p4)
    p4 = jnp.asarray(p4, jnp.float32)[:, :max_particles]
    mask = p4[..., 0] > 0
    return jnp.where(mask[..., None], p4 / scale_gev, 0.0), mask


@jax.jit
def rotate_about_beam(p4: jax.Array, angle: jax.Array) -> jax.Array:
    """p4 with (px, py) rotated by ``angle`` radians about the z (beam) axis; angle () or (N,). Padding stays zero."""
    check_p4(p4)
    p4 = jnp.asarray(p4, jnp.float32)
    angle = jnp.broadcast_to(jnp.asarray(angle, jnp.float32), p4.shape[:1])[:, None]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    px, py = p4[..., 1], p4[..., 2]
    return jnp.stack([p4[..., 0], cos * px - sin * py, sin * px + cos * py, p4[..., 3]], axis=-1)
