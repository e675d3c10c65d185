"""Embedded event generator for the FAIR Universe task: H→ττ, Z→ττ, tt̄ and WW in ℓ + τ_h.

Events come from a kinematic chain, not fitted shapes: the hard system (resonance, tt̄ pair, WW
pair) gets a mass, a transverse momentum and a rapidity; every decay is a two-body (or Michel)
decay in the parent's rest frame, boosted to the lab; jets recoil against the system; a simple
detector smears momenta, applies acceptance, orders jets and builds the missing transverse
momentum. Spin correlations and polarisation are ignored (all decays are isotropic).

Randomness: candidate event ``i`` of a process is a pure function of ``fold_in(key, i)``, so the
events do not depend on how many candidates one jitted batch simulates. Momenta and masses in GeV,
angles in radians.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels.segments import segment_sum

from . import schema
from .systematics import apply_nominal


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Physics constants of the generator. Masses, widths and momenta in GeV.

    A pytree: the values are traced, so changing them does not recompile. Per-process tuples are
    ordered like ``schema.PROCESSES`` (htautau, ztautau, ttbar, diboson).
    """

    # Masses and widths (PDG); (low, high) windows truncate the Breit–Wigner line shapes.
    tau_mass: float = 1.77686
    higgs_mass: float = 125.0
    higgs_width: float = 0.0041
    higgs_mass_window: tuple[float, float] = (124.0, 126.0)
    z_mass: float = 91.1876
    z_width: float = 2.4952
    z_mass_window: tuple[float, float] = (60.0, 160.0)
    w_mass: float = 80.379
    w_width: float = 2.085
    w_mass_window: tuple[float, float] = (50.0, 110.0)
    top_mass: float = 172.5
    top_width: float = 1.42
    top_mass_window: tuple[float, float] = (152.5, 192.5)
    b_mass: float = 4.8

    # Hadronic tau decays τ→(visible system)ν: π, ρ(770)→ππ⁰, a1(1260)→3π, as shares of the
    # hadronic decays from the PDG branching ratios 10.8%, 25.5%, 18.3% (π⁻2π⁰ + 3π±).
    pion_mass: float = 0.13957
    rho_mass: float = 0.77526
    rho_width: float = 0.1491
    a1_mass: float = 1.23
    a1_width: float = 0.42
    tau_hadronic_fractions: tuple[float, float, float] = (0.20, 0.47, 0.33)

    # Production. System pT has density ∝ pT / (pT² + scale²)^power (for power 2.5: mean = scale,
    # mode = scale / 2); rapidity ~ N(0, sigma).
    system_pt_scale: tuple[float, float, float, float] = (30.0, 12.0, 50.0, 20.0)
    system_pt_power: float = 2.5
    system_rapidity_sigma: tuple[float, float, float, float] = (1.8, 2.0, 1.0, 1.4)
    max_pt: float = 1000.0  # truncation of every sampled pT spectrum
    vbf_fraction: float = 0.1  # share of vector-boson fusion in the signal; the rest is ggF
    vbf_tag_pt_scale: float = 50.0  # tag-jet pT spectrum scale (power system_pt_power)
    vbf_delta_eta_mean: float = 4.5  # tag jets at centre ± Δη/2, Δη ~ N(mean, sigma)
    vbf_delta_eta_sigma: float = 1.2
    vbf_centre_sigma: float = 0.8
    vbf_higgs_rapidity_sigma: float = 0.7  # Higgs rapidity around the tag-jet centre
    pair_mass_excess_scale: tuple[float, float] = (70.0, 50.0)  # tt̄, WW: m − Σm ~ Gamma(2, s)

    # Initial-state radiation: one jet takes the recoil of the system and of two optional extra
    # jets, each present with the process's probability, pT ~ Pareto(min, index) up to max_pt.
    isr_extra_jet_probability: tuple[float, float, float, float] = (0.3, 0.15, 0.35, 0.2)
    isr_extra_pt_min: float = 15.0
    isr_extra_pt_index: float = 2.5
    isr_eta_sigma: float = 1.8  # ISR jet pseudorapidity spread around the system rapidity

    # W decays in tt̄ and WW. Lepton side: W→ℓν, or W→τν→ℓννν with BR(W→τν)·BR(τ→ℓνν) over
    # the total (0.038 / 0.254). Had side: W→τν with τ→hν, or W→qq' where a quark fakes τ_h
    # carrying a fraction ~ U(fake_had_pt_fraction) of the quark momentum.
    lepton_from_tau_fraction: float = 0.15
    fake_had_fraction: tuple[float, float] = (0.5, 0.3)  # tt̄, WW
    fake_had_pt_fraction: tuple[float, float] = (0.7, 1.0)

    # Detector: Gaussian relative pT resolutions, jets σ/pT = a·sqrt(50 GeV / pT) ⊕ c; the soft
    # MET term is Gaussian per component. Jets outside |η| < jet_eta_max are not measured.
    lepton_pt_resolution: float = 0.02
    had_pt_resolution: float = 0.08
    jet_pt_resolution_at_50: float = 0.12
    jet_pt_resolution_constant: float = 0.03
    met_soft_sigma: float = 8.0
    lepton_eta_max: float = 2.5
    had_eta_max: float = 2.5
    jet_eta_max: float = 4.7
    jet_pt_min: float = 20.0
    lepton_pt_min: float = 20.0
    had_pt_min: float = 20.0


_UNIFORMS_PER_EVENT = 40  # the most any process uses (tt̄: 35)
_NORMALS_PER_EVENT = 16  # (H, tt̄: 14)


class _Variates:
    """One event's random numbers, drawn in two calls and handed out in order while tracing.

    Every ``jax.random`` call site costs compile time (an inlined threefry hash), so an event draws
    one block of uniforms and one of normals from its key and the samplers take consecutive slices.
    """

    def __init__(self, key: jax.Array):
        k_uniform, k_normal = jax.random.split(key)
        self._blocks = {
            "uniform": jax.random.uniform(k_uniform, (_UNIFORMS_PER_EVENT,)),
            "normal": jax.random.normal(k_normal, (_NORMALS_PER_EVENT,)),
        }
        self._used = {"uniform": 0, "normal": 0}

    def _take(self, kind: str, shape: tuple[int, ...]) -> jax.Array:
        size, start = math.prod(shape), self._used[kind]
        block = self._blocks[kind]
        if start + size > block.shape[0]:
            raise RuntimeError(f"an event needs more than {block.shape[0]} {kind} variates")
        self._used[kind] = start + size
        return block[start : start + size].reshape(shape)

    def uniform(self, shape: tuple[int, ...] = (), low=0.0, high=1.0) -> jax.Array:
        """U[low, high)."""
        return low + (high - low) * self._take("uniform", shape)

    def normal(self, shape: tuple[int, ...] = ()) -> jax.Array:
        """N(0, 1)."""
        return self._take("normal", shape)

    def bernoulli(self, probability) -> jax.Array:
        return self.uniform() < probability

    def azimuth(self, shape: tuple[int, ...] = ()) -> jax.Array:
        """U[0, 2π)."""
        return self.uniform(shape, high=2.0 * np.pi)


class _P4(NamedTuple):
    """Four-momentum (GeV); the components are arrays of one shape (scalars for one particle)."""

    e: jax.Array
    px: jax.Array
    py: jax.Array
    pz: jax.Array


def _add(*momenta: _P4) -> _P4:
    return _P4(*(sum(parts) for parts in zip(*momenta)))


def _sub(a: _P4, b: _P4) -> _P4:
    return _P4(*(x - y for x, y in zip(a, b)))


def _scale(a: _P4, factor) -> _P4:
    return _P4(*(factor * x for x in a))


def _where(condition, a: _P4, b: _P4) -> _P4:
    return _P4(*(jnp.where(condition, x, y) for x, y in zip(a, b)))


def _stack(momenta: list[_P4]) -> _P4:
    """Particles (scalar or 1-d components) -> one _P4 with 1-d components."""
    return _P4(*(jnp.concatenate([jnp.atleast_1d(x) for x in parts]) for parts in zip(*momenta)))


def _zero() -> _P4:
    return _P4(*(jnp.zeros(()) for _ in range(4)))


class _TruthEvent(NamedTuple):
    """Generator-level objects of one event: scalar components, except jets (J,).

    Absent jets have zero momentum; ``invisible`` is the sum of all neutrinos.
    """

    lepton: _P4
    had: _P4
    jets: _P4
    invisible: _P4


# ----------------------------------------------------------------------------------------------
# Samplers and kinematics of one event.


def sample_michel_x(key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
    """Lepton energy fraction x = 2E/m_τ in unpolarised τ→ℓνν: density 2x²(3 − 2x) on [0, 1]."""
    return _michel_x(jax.random.uniform(key, shape))


def _michel_x(u: jax.Array) -> jax.Array:
    """Inverse of the Michel CDF 2x³ − x⁴ at u, by 24 bisections (float32 resolution)."""

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = 2.0 * mid**3 - mid**4 < u
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 24, halve, (jnp.zeros_like(u), jnp.ones_like(u)))
    return 0.5 * (lo + hi)


def _breit_wigner_mass(rv: _Variates, mass, width, window) -> jax.Array:
    """Relativistic Breit–Wigner mass, dP/ds ∝ 1/((s − M²)² + M²Γ²), truncated to window."""
    lo, hi = (jnp.arctan((m**2 - mass**2) / (mass * width)) for m in window)
    return jnp.sqrt(mass**2 + mass * width * jnp.tan(rv.uniform(low=lo, high=hi)))


def _falling_pt(rv: _Variates, scale, power, max_pt, shape: tuple[int, ...] = ()) -> jax.Array:
    """pT with density ∝ pT / (pT² + scale²)^power on [0, max_pt] (inverse CDF)."""
    u_min = (scale**2 / (max_pt**2 + scale**2)) ** (power - 1.0)
    return scale * jnp.sqrt(rv.uniform(shape, low=u_min) ** (-1.0 / (power - 1.0)) - 1.0)


def _pareto_pt(rv: _Variates, pt_min, index, max_pt, shape: tuple[int, ...] = ()) -> jax.Array:
    """pT with density ∝ pT^-(index + 1) on [pt_min, max_pt]."""
    return pt_min * rv.uniform(shape, low=(pt_min / max_pt) ** index) ** (-1.0 / index)


def _gamma2(rv: _Variates, scale) -> jax.Array:
    """Gamma(shape 2, scale): the sum of two exponentials."""
    return -scale * jnp.log1p(-rv.uniform((2,))).sum()


def _from_pt_y_phi_m(pt, y, phi, m) -> _P4:
    mt = jnp.sqrt(pt**2 + m**2)
    return _P4(mt * jnp.cosh(y), pt * jnp.cos(phi), pt * jnp.sin(phi), mt * jnp.sinh(y))


def _from_transverse(px, py, y, m) -> _P4:
    """Four-momentum with transverse components (px, py), rapidity y and mass m."""
    mt = jnp.sqrt(px**2 + py**2 + m**2)
    return _P4(mt * jnp.cosh(y), px, py, mt * jnp.sinh(y))


def _boost_to_lab(p_rest: _P4, parent: _P4, parent_mass) -> _P4:
    """Boost ``p_rest`` from the rest frame of ``parent`` (mass ``parent_mass``) to the lab."""
    v_dot = parent.px * p_rest.px + parent.py * p_rest.py + parent.pz * p_rest.pz
    energy = (parent.e * p_rest.e + v_dot) / parent_mass
    along = v_dot / (parent_mass * (parent.e + parent_mass)) + p_rest.e / parent_mass
    return _P4(energy, p_rest.px + along * parent.px, p_rest.py + along * parent.py, p_rest.pz + along * parent.pz)


def _isotropic(rv: _Variates, energy, momentum) -> _P4:
    """Four-momentum with the given energy and |p|, direction uniform on the sphere."""
    cos_theta = rv.uniform(low=-1.0, high=1.0)
    phi = rv.azimuth()
    p_t = momentum * jnp.sqrt(1.0 - cos_theta**2)
    return _P4(energy, p_t * jnp.cos(phi), p_t * jnp.sin(phi), momentum * cos_theta)


def _two_body_decay(rv: _Variates, parent: _P4, parent_mass, m1, m2) -> tuple[_P4, _P4]:
    """Isotropic decay parent → 1 + 2 in the parent's rest frame; lab four-momenta of 1 and 2."""
    lam = (parent_mass**2 - (m1 + m2) ** 2) * (parent_mass**2 - (m1 - m2) ** 2)
    p_star = jnp.sqrt(jnp.maximum(lam, 0.0)) / (2.0 * parent_mass)
    p1 = _isotropic(rv, jnp.sqrt(p_star**2 + m1**2), p_star)
    p2 = _P4(jnp.sqrt(p_star**2 + m2**2), -p1.px, -p1.py, -p1.pz)
    return _boost_to_lab(p1, parent, parent_mass), _boost_to_lab(p2, parent, parent_mass)


def _tau_to_lepton(rv: _Variates, tau: _P4, config: GeneratorConfig) -> tuple[_P4, _P4]:
    """τ→ℓνν: massless lepton with Michel energy, isotropic; (lepton, neutrino pair)."""
    energy = 0.5 * config.tau_mass * _michel_x(rv.uniform())
    lepton = _boost_to_lab(_isotropic(rv, energy, energy), tau, config.tau_mass)
    return lepton, _sub(tau, lepton)


def _tau_to_hadrons(rv: _Variates, tau: _P4, config: GeneratorConfig) -> tuple[_P4, _P4]:
    """τ→(π | ρ | a1)ν two-body decay; (visible hadronic system, neutrino)."""
    limit = config.tau_mass - 1e-3
    pion = config.pion_mass
    rho = _breit_wigner_mass(rv, config.rho_mass, config.rho_width, (2 * pion, limit))
    a1 = _breit_wigner_mass(rv, config.a1_mass, config.a1_width, (3 * pion, limit))
    pion_share, rho_share, _ = config.tau_hadronic_fractions
    u = rv.uniform()
    visible_mass = jnp.where(u < pion_share, pion, jnp.where(u < pion_share + rho_share, rho, a1))
    return _two_body_decay(rv, tau, config.tau_mass, visible_mass, 0.0)


def _recoil_jets(rv: _Variates, system: _P4, system_y, extra_probability, config: GeneratorConfig) -> _P4:
    """ISR: a jet balancing the system and two optional extra jets; massless, (3,) components."""
    extra_pt = _pareto_pt(rv, config.isr_extra_pt_min, config.isr_extra_pt_index, config.max_pt, (2,)) * (
        rv.uniform((2,)) < extra_probability
    )
    extra_eta = system_y + config.isr_eta_sigma * rv.normal((2,))
    extras = _from_pt_y_phi_m(extra_pt, extra_eta, rv.azimuth((2,)), 0.0)
    recoil = _from_transverse(
        -system.px - extras.px.sum(), -system.py - extras.py.sum(), system_y + config.isr_eta_sigma * rv.normal(), 0.0
    )
    return _stack([recoil, extras])


def _system(rv: _Variates, process: int, mass, config: GeneratorConfig) -> tuple[_P4, jax.Array]:
    """Hard system of the given mass with the process's pT and rapidity; (momentum, rapidity)."""
    pt = _falling_pt(rv, config.system_pt_scale[process], config.system_pt_power, config.max_pt)
    y = config.system_rapidity_sigma[process] * rv.normal()
    return _from_pt_y_phi_m(pt, y, rv.azimuth(), mass), y


def _tautau_event(rv: _Variates, boson: _P4, boson_mass, jets: _P4, config: GeneratorConfig) -> _TruthEvent:
    """Boson → τ_ℓ τ_h, isotropic in the boson rest frame."""
    tau_lep, tau_had = _two_body_decay(rv, boson, boson_mass, config.tau_mass, config.tau_mass)
    lepton, nu_lep = _tau_to_lepton(rv, tau_lep, config)
    had, nu_had = _tau_to_hadrons(rv, tau_had, config)
    return _TruthEvent(lepton, had, jets, _add(nu_lep, nu_had))


def _higgs_event(rv: _Variates, config: GeneratorConfig) -> _TruthEvent:
    """H(125)→ττ from gluon fusion (ISR recoil) or vector-boson fusion (two tag jets)."""
    mass = _breit_wigner_mass(rv, config.higgs_mass, config.higgs_width, config.higgs_mass_window)

    ggf, ggf_y = _system(rv, schema.SIGNAL, mass, config)
    ggf_jets = _recoil_jets(rv, ggf, ggf_y, config.isr_extra_jet_probability[schema.SIGNAL], config)

    # VBF: the Higgs balances two tag jets in opposite hemispheres around a centre.
    tag_pt = _falling_pt(rv, config.vbf_tag_pt_scale, config.system_pt_power, config.max_pt, (2,))
    centre = config.vbf_centre_sigma * rv.normal()
    half_gap = 0.5 * jnp.abs(config.vbf_delta_eta_mean + config.vbf_delta_eta_sigma * rv.normal())
    tag_eta = centre + jnp.stack([half_gap, -half_gap])
    tags = _from_pt_y_phi_m(tag_pt, tag_eta, rv.azimuth((2,)), 0.0)
    vbf_y = centre + config.vbf_higgs_rapidity_sigma * rv.normal()
    vbf = _from_transverse(-tags.px.sum(), -tags.py.sum(), vbf_y, mass)

    is_vbf = rv.bernoulli(config.vbf_fraction)
    jets = _where(is_vbf, _stack([tags, _zero()]), ggf_jets)
    return _tautau_event(rv, _where(is_vbf, vbf, ggf), mass, jets, config)


def _z_event(rv: _Variates, config: GeneratorConfig) -> _TruthEvent:
    """Drell–Yan Z→ττ with ISR jets recoiling against the Z."""
    mass = _breit_wigner_mass(rv, config.z_mass, config.z_width, config.z_mass_window)
    boson, y = _system(rv, schema.ZTAUTAU, mass, config)
    jets = _recoil_jets(rv, boson, y, config.isr_extra_jet_probability[schema.ZTAUTAU], config)
    return _tautau_event(rv, boson, mass, jets, config)


def _w_masses(rv: _Variates, config: GeneratorConfig) -> list[jax.Array]:
    window = config.w_mass_window
    return [_breit_wigner_mass(rv, config.w_mass, config.w_width, window) for _ in range(2)]


def _w_to_lepton(rv: _Variates, w: _P4, w_mass, config: GeneratorConfig) -> tuple[_P4, _P4]:
    """W→ℓν, or W→τν with τ→ℓνν; (lepton, sum of neutrinos)."""
    via_tau = rv.bernoulli(config.lepton_from_tau_fraction)
    charged, nu_w = _two_body_decay(rv, w, w_mass, jnp.where(via_tau, config.tau_mass, 0.0), 0.0)
    tau_lepton, nu_tau = _tau_to_lepton(rv, charged, config)
    lepton = _where(via_tau, tau_lepton, charged)
    return lepton, _add(nu_w, _where(via_tau, nu_tau, _zero()))


def _w_to_had(rv: _Variates, w: _P4, w_mass, fake_fraction, config: GeneratorConfig) -> tuple[_P4, _P4, _P4]:
    """W→τν with τ→hν, or W→qq' with q faking τ_h; (had, neutrinos, jet from q' or zero).

    The part of a faking quark's momentum outside the τ_h candidate is measured as soft activity,
    so it adds no MET.
    """
    is_fake = rv.bernoulli(fake_fraction)
    first, second = _two_body_decay(rv, w, w_mass, jnp.where(is_fake, 0.0, config.tau_mass), 0.0)
    tau_visible, nu_tau = _tau_to_hadrons(rv, first, config)
    low, high = config.fake_had_pt_fraction
    had = _where(is_fake, _scale(first, rv.uniform(low=low, high=high)), tau_visible)
    invisible = _where(is_fake, _zero(), _add(second, nu_tau))
    return had, invisible, _where(is_fake, second, _zero())


def _ttbar_event(rv: _Variates, config: GeneratorConfig) -> _TruthEvent:
    """tt̄ → (W→ℓ side) b (W→had side) b̄ with ISR; b quarks and W quarks become jets."""
    m_top = [_breit_wigner_mass(rv, config.top_mass, config.top_width, config.top_mass_window) for _ in range(2)]
    m_w = _w_masses(rv, config)
    pair_mass = m_top[0] + m_top[1] + _gamma2(rv, config.pair_mass_excess_scale[0])
    pair, y = _system(rv, schema.TTBAR, pair_mass, config)
    top, antitop = _two_body_decay(rv, pair, pair_mass, m_top[0], m_top[1])
    w_lep, b = _two_body_decay(rv, top, m_top[0], m_w[0], config.b_mass)
    w_had, b_bar = _two_body_decay(rv, antitop, m_top[1], m_w[1], config.b_mass)
    lepton, nu_lep = _w_to_lepton(rv, w_lep, m_w[0], config)
    had, nu_had, w_jet = _w_to_had(rv, w_had, m_w[1], config.fake_had_fraction[0], config)
    isr = _recoil_jets(rv, pair, y, config.isr_extra_jet_probability[schema.TTBAR], config)
    return _TruthEvent(lepton, had, _stack([b, b_bar, w_jet, isr]), _add(nu_lep, nu_had))


def _diboson_event(rv: _Variates, config: GeneratorConfig) -> _TruthEvent:
    """WW → (ℓν)(τ_h ν, or a fake τ_h from qq') with ISR."""
    m_w = _w_masses(rv, config)
    pair_mass = m_w[0] + m_w[1] + _gamma2(rv, config.pair_mass_excess_scale[1])
    pair, y = _system(rv, schema.DIBOSON, pair_mass, config)
    w_lep, w_had = _two_body_decay(rv, pair, pair_mass, m_w[0], m_w[1])
    lepton, nu_lep = _w_to_lepton(rv, w_lep, m_w[0], config)
    had, nu_had, w_jet = _w_to_had(rv, w_had, m_w[1], config.fake_had_fraction[1], config)
    isr = _recoil_jets(rv, pair, y, config.isr_extra_jet_probability[schema.DIBOSON], config)
    return _TruthEvent(lepton, had, _stack([w_jet, isr]), _add(nu_lep, nu_had))


_TRUTH_EVENTS = (_higgs_event, _z_event, _ttbar_event, _diboson_event)  # schema.PROCESSES order


# ----------------------------------------------------------------------------------------------
# Detector.


def _pt_eta_phi(p: _P4) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(pT, η, φ); η = 0 where pT = 0; φ in (−π, π]."""
    pt = jnp.hypot(p.px, p.py)
    eta = jnp.where(pt > 0, jnp.arcsinh(p.pz / jnp.where(pt > 0, pt, 1.0)), 0.0)
    return pt, eta, _azimuth(p.px, p.py)


def _azimuth(x, y) -> jax.Array:
    phi = jnp.arctan2(y, x)
    return jnp.where(phi <= -np.pi, phi + 2.0 * np.pi, phi)


def _detect(rv: _Variates, truth: _TruthEvent, config: GeneratorConfig) -> tuple[jax.Array, jax.Array]:
    """Smear, select and summarise one event: (PRI features (16,), stored-data acceptance)."""
    lep_true, lep_eta, lep_phi = _pt_eta_phi(truth.lepton)
    had_true, had_eta, had_phi = _pt_eta_phi(truth.had)
    jet_true, jet_eta, jet_phi = _pt_eta_phi(truth.jets)

    lep_pt = lep_true * jnp.maximum(1.0 + config.lepton_pt_resolution * rv.normal(), 0.0)
    had_pt = had_true * jnp.maximum(1.0 + config.had_pt_resolution * rv.normal(), 0.0)
    jet_resolution = jnp.hypot(
        config.jet_pt_resolution_at_50 * jnp.sqrt(50.0 / jnp.maximum(jet_true, 1.0)), config.jet_pt_resolution_constant
    )
    jet_smearing = jnp.maximum(1.0 + jet_resolution * rv.normal(jet_true.shape), 0.0)
    measured = jnp.abs(jet_eta) < config.jet_eta_max  # beyond the calorimeter a jet is lost
    jet_pt = jnp.where(measured, jet_true * jet_smearing, 0.0)
    stored = jet_pt > config.jet_pt_min

    # MET = −(measured visible pT) = neutrinos + (true − measured) of visible objects + soft term.
    lost_pt = (lep_true - lep_pt, had_true - had_pt, jet_true - jet_pt)
    phis = (lep_phi, had_phi, jet_phi)
    soft_x, soft_y = config.met_soft_sigma * rv.normal((2,))
    met_x = truth.invisible.px + soft_x + sum((d * jnp.cos(f)).sum() for d, f in zip(lost_pt, phis))
    met_y = truth.invisible.py + soft_y + sum((d * jnp.sin(f)).sum() for d, f in zip(lost_pt, phis))

    ranked_pt, order = jax.lax.top_k(jnp.where(stored, jet_pt, -1.0), 2)

    def jet_features(rank):
        present, i = ranked_pt[rank] > 0, order[rank]
        return [jnp.where(present, x[i], schema.MISSING) for x in (jet_pt, jet_eta, jet_phi)]

    pri = jnp.stack([
        lep_pt, lep_eta, lep_phi,
        had_pt, had_eta, had_phi,
        *jet_features(0),
        *jet_features(1),
        stored.sum().astype(jnp.float32),
        jnp.where(stored, jet_pt, 0.0).sum(),
        jnp.hypot(met_x, met_y),
        _azimuth(met_x, met_y),
    ])  # fmt: skip
    accepted = (
        (lep_pt > config.lepton_pt_min)
        & (had_pt > config.had_pt_min)
        & (jnp.abs(lep_eta) < config.lepton_eta_max)
        & (jnp.abs(had_eta) < config.had_eta_max)
    )
    return pri.astype(jnp.float32), accepted


# ----------------------------------------------------------------------------------------------
# Public API.


@functools.partial(jax.jit, static_argnames=("process", "size"))
def _candidates(key, start, config: GeneratorConfig, process: int, size: int):
    """Candidates ``start .. start + size - 1`` of a process: (PRI (size, 16), accepted (size,))."""

    def one_event(index):
        rv = _Variates(jax.random.fold_in(key, index))
        return _detect(rv, _TRUTH_EVENTS[process](rv, config), config)

    return jax.vmap(one_event)(start + jnp.arange(size, dtype=jnp.uint32))


def generate_process(
    key: jax.Array,
    process: int,
    n: int,
    config: GeneratorConfig = GeneratorConfig(),
    *,
    candidates_per_round: int = 1 << 16,
) -> np.ndarray:
    """Exactly ``n`` stored events of one process (an id into ``schema.PROCESSES``).

    Shapes: -> (n, 16) float32 in ``schema.PRI_COLUMNS`` order. Candidates are simulated in jitted
    batches of ``candidates_per_round`` (one compilation per process and batch size) until ``n``
    pass the stored-data selection; the events do not depend on the batch size.
    """
    if process not in range(len(schema.PROCESSES)):
        ids = ", ".join(f"{i}={name}" for i, name in enumerate(schema.PROCESSES))
        raise ValueError(f"process must be a process id ({ids}), got {process!r}")
    if n < 0:
        raise ValueError(f"n must be a number of events >= 0, got {n}")
    kept, total, start = [], 0, 0
    while total < n:
        pri, accepted = _candidates(key, start, config, process, candidates_per_round)
        kept.append(np.asarray(pri)[np.asarray(accepted)])
        total += len(kept[-1])
        start += candidates_per_round
        if total == 0 and start >= 1 << 20:
            raise RuntimeError(
                f"none of {start} {schema.PROCESSES[process]} candidates passes the stored-data "
                f"selection; check the thresholds and acceptance in {config}"
            )
    return np.concatenate(kept or [np.zeros((0, len(schema.PRI_COLUMNS)), np.float32)])[:n]


def generate_pool(
    key: jax.Array, n_per_process: tuple[int, int, int, int], config: GeneratorConfig = GeneratorConfig()
) -> schema.EventPool:
    """A pool of all processes in ``schema.PROCESSES`` order, process p from ``fold_in(key, p)``.

    Weights are ``schema.EXPECTED_YIELDS[p] / n_p``; the caller renormalises them after the
    analysis cuts.
    """
    if len(n_per_process) != len(schema.PROCESSES):
        raise ValueError(f"n_per_process needs one count per process {schema.PROCESSES}, got {n_per_process!r}")
    pri, weights, process = [], [], []
    for p, (name, n) in enumerate(zip(schema.PROCESSES, n_per_process)):
        pri.append(generate_process(jax.random.fold_in(key, p), p, n, config))
        weights.append(np.full(n, schema.EXPECTED_YIELDS[name] / max(n, 1), np.float32))
        process.append(np.full(n, p, np.int32))
    return schema.EventPool(
        pri=jnp.asarray(np.concatenate(pri)),
        weights=jnp.asarray(np.concatenate(weights)),
        process=jnp.asarray(np.concatenate(process)),
    )


def normalise_to_yields(pool: schema.EventPool) -> schema.EventPool:
    """Rescales each process so its weights after the nominal analysis cuts sum to the challenge yield."""
    _, _, passed = apply_nominal(pool.pri, pool.weights, pool.process)
    sums = segment_sum(jnp.where(passed, pool.weights, 0.0), pool.process, len(schema.PROCESSES))
    targets = jnp.asarray([schema.EXPECTED_YIELDS[p] for p in schema.PROCESSES], jnp.float32)
    return pool._replace(weights=pool.weights * (targets / sums)[pool.process])
