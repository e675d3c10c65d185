"""Profile-likelihood fit: intervals against iminuit MINOS, calibration, vmap, jit and sharding."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from iminuit import Minuit
from scipy.special import xlogy

from jaxbench.kernels.likelihood import FitResult, make_profile_fit, poisson_nll

ONE_SIGMA = 0.6827


class ToyModel(NamedTuple):
    """Template model written once for both namespaces: ``expected(mu, alpha, xp) -> lam (B,)``."""

    expected: Callable
    center: np.ndarray  # (K,)
    sigma: np.ndarray  # (K,)
    mu_true: float

    def jax_expected(self, mu, alpha):
        return self.expected(mu, alpha, jnp)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Poisson pseudo-experiments (size, B) at mu_true, nuisances drawn from their priors."""
        alphas = self.center + self.sigma * rng.normal(size=(size, self.center.size))
        lam = np.stack([self.expected(self.mu_true, alpha, np) for alpha in alphas])
        return rng.poisson(lam).astype(float)


# (a) Gaussian signal peak on a flat background, no nuisances.
_A_BINS = np.arange(20)
_A_SIGNAL = 300 * np.exp(-0.5 * ((_A_BINS - 10) / 2.0) ** 2) / np.sqrt(2 * np.pi * 2.0**2)
_A_BACKGROUND = np.full(20, 50.0)
PEAK = ToyModel(lambda mu, alpha, xp: mu * _A_SIGNAL + _A_BACKGROUND, np.zeros(0), np.zeros(0), 1.0)

# (b) Shaped like the FAIR Universe H->tautau task: 15 score bins, backgrounds from ~1e6 (low score)
# to ~10-100 (high score), 1000 signal events rising with score. Nuisances: three normalisations
# (Z->tautau, ttbar, diboson; sigma 0.1%, 2%, 25%) and three per-bin log-quadratic shape responses
# exp(a_b alpha + c_b alpha^2) (tau and jet energy scales, sigma 0.01; soft MET, sigma 1). The 25%
# diboson normalisation sits under the signal, so the stat-only interval is far too short.
_SCORE = (np.arange(15) + 0.5) / 15
_ZTT = 1e6 * np.exp(-12 * _SCORE)
_TTBAR = 2e4 * np.exp(-6 * _SCORE)
_DIBOSON = np.full(15, 50.0)
_SIGNAL = 1000 * np.exp(5 * _SCORE) / np.exp(5 * _SCORE).sum()
_TES_LINEAR, _TES_QUADRATIC = 4 * (_SCORE - 0.4), 20.0
_JES_LINEAR, _JES_QUADRATIC = 3 * (_SCORE - 0.5), 10.0
_MET_LINEAR, _MET_QUADRATIC = 0.03 * (1 - _SCORE), 0.002


def _hep_expected(mu, alpha, xp):
    n_ztt, n_ttbar, n_diboson, tes, jes, met = (alpha[i] for i in range(6))
    ztt = n_ztt * _ZTT * xp.exp(_MET_LINEAR * met + _MET_QUADRATIC * met**2)
    tes_response = xp.exp(_TES_LINEAR * tes + _TES_QUADRATIC * tes**2)
    background = (ztt + n_ttbar * _TTBAR) * tes_response + n_diboson * _DIBOSON
    return mu * _SIGNAL * xp.exp(_JES_LINEAR * jes + _JES_QUADRATIC * jes**2) + background


HEP = ToyModel(
    _hep_expected, np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]), np.array([0.001, 0.02, 0.25, 0.01, 0.01, 1.0]), 1.0
)

# (c) A handful of events: mu near 0, asymmetric interval, a 10% background normalisation.
_C_SIGNAL = np.array([0.5, 1.0, 1.5, 2.0])
_C_BACKGROUND = np.array([6.0, 4.0, 3.0, 2.0])
LOW_COUNTS = ToyModel(
    lambda mu, alpha, xp: mu * _C_SIGNAL + alpha[0] * _C_BACKGROUND, np.array([1.0]), np.array([0.1]), 0.0
)
# Nominal, below and above it; [4, 3, 1, 1] and [2, 1, 0, 1] put the lower edge near the zero-yield
# boundary mu = -alpha of the last bin.
LOW_COUNT_HISTOGRAMS = np.array([[6, 4, 3, 2], [4, 3, 1, 1], [7, 5, 4, 5], [8, 5, 2, 3], [2, 1, 0, 1]], float)


def minos_interval(model: ToyModel, counts: np.ndarray, fix_nuisances: bool = False):
    """Reference (mu_hat, p16, p84) from iminuit MIGRAD + MINOS on the float64 NLL, errordef 0.5."""
    counts = np.asarray(counts, np.float64)

    def nll(params):
        with np.errstate(over="ignore", invalid="ignore"):
            lam = model.expected(params[0], params[1:], np)
            if not np.all(lam > 0):
                return 1e30
            constraint = np.sum((params[1:] - model.center) ** 2 / (2 * model.sigma**2))
            return np.sum(lam - counts + xlogy(counts, counts / lam)) + constraint

    minuit = Minuit(nll, np.concatenate([[max(model.mu_true, 0.5)], model.center]))
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.errors = np.concatenate([[0.1], model.sigma])
    minuit.strategy = 2
    minuit.tol = 1e-4
    if fix_nuisances and model.center.size:
        minuit.fixed[1:] = True
    minuit.migrad()
    minuit.minos(0)
    error = minuit.merrors[0]
    assert minuit.valid and error.is_valid, (minuit.fmin, error)
    mu_hat = minuit.values[0]
    return mu_hat, mu_hat + error.lower, mu_hat + error.upper


def assert_matches_minos(result: FitResult, reference, fraction_of_width: float = 0.01):
    mu_hat, p16, p84 = reference
    tolerance = fraction_of_width * (p84 - p16)
    found = np.array([result.mu_hat, result.p16, result.p84], np.float64)
    np.testing.assert_allclose(found, [mu_hat, p16, p84], rtol=0, atol=tolerance)
    assert bool(result.converged)


@pytest.fixture(scope="module")
def hep_fit():
    return make_profile_fit(HEP.jax_expected, HEP.center, HEP.sigma)


@pytest.fixture(scope="module")
def hep_stat_only_fit():
    return make_profile_fit(HEP.jax_expected, HEP.center, HEP.sigma, profile=False)


@pytest.fixture(scope="module")
def hep_toys():
    return HEP.sample(np.random.default_rng(7), 300)


@given(counts=st.integers(0, 10_000_000), ratio=st.sampled_from([1.0]) | st.floats(0.5, 2.0), pull=st.floats(-5.0, 5.0))
def test_poisson_nll_is_accurate_in_float32_at_large_counts(counts, ratio, pull):
    # lam within a few sqrt(n) of n (near a fit's minimum) or off by a factor (far from it).
    lam32 = np.float32(max(counts * ratio + pull * np.sqrt(counts), 1e-3))
    lam, n = np.float64(lam32), np.float64(np.float32(counts))
    reference = lam - n + xlogy(n, n / lam)
    value = float(poisson_nll(jnp.asarray([lam32]), jnp.asarray([n], jnp.float32)))
    # rel 1e-5: float32 log1p(r) near r = -1 (lam << n, e.g. n = 1, lam = 1e-3) loses ~2e-6;
    # the textbook sum(lam - n log lam) is off by orders of magnitude at n ~ 1e6.
    assert value == pytest.approx(reference, rel=1e-5, abs=1e-6)


def test_poisson_nll_is_infinite_with_finite_gradient_for_non_positive_yields():
    counts = jnp.array([3.0, 0.0, 5.0])
    for lam in ([0.0, 1.0, 5.0], [-1.0, 1.0, 5.0], [2.0, -0.5, 5.0]):
        lam = jnp.array(lam)
        assert float(poisson_nll(lam, counts)) == np.inf
        assert np.all(np.isfinite(jax.grad(poisson_nll)(lam, counts)))
    # An empty bin may have zero expectation.
    assert float(poisson_nll(jnp.array([0.0]), jnp.array([0.0]))) == 0.0


def test_poisson_nll_differs_from_textbook_form_by_a_constant():
    counts = jnp.array([0.0, 2.0, 30.0])
    lam_a, lam_b = jnp.array([0.5, 1.5, 28.0]), jnp.array([1.0, 3.0, 33.0])

    def textbook(lam):
        return jnp.sum(lam - counts * jnp.log(lam))

    difference = poisson_nll(lam_a, counts) - poisson_nll(lam_b, counts)
    np.testing.assert_allclose(difference, textbook(lam_a) - textbook(lam_b), rtol=1e-5)


def test_profile_interval_matches_minos_peak_on_flat_background():
    fit = make_profile_fit(PEAK.jax_expected, PEAK.center, PEAK.sigma)
    for counts in PEAK.sample(np.random.default_rng(0), 4):
        result = fit(counts)
        assert_matches_minos(result, minos_interval(PEAK, counts))
        # Gaussian regime: the Hessian error is the half-width.
        half_width = float(result.p84 - result.p16) / 2
        assert float(result.sigma_hessian) == pytest.approx(half_width, rel=0.03)


def test_profile_interval_matches_minos_hep_like_model(hep_fit):
    for counts in HEP.sample(np.random.default_rng(1), 5):
        result = hep_fit(counts)
        assert_matches_minos(result, minos_interval(HEP, counts))
        assert result.nuisances_hat.shape == (6,)


def test_profile_interval_matches_minos_low_counts_asymmetric():
    fit = make_profile_fit(LOW_COUNTS.jax_expected, LOW_COUNTS.center, LOW_COUNTS.sigma, mu_init=0.0)
    for counts in LOW_COUNT_HISTOGRAMS:
        result = fit(counts)
        mu_hat, p16, p84 = reference = minos_interval(LOW_COUNTS, counts)
        assert_matches_minos(result, reference)
        assert abs(mu_hat) < 2 * (p84 - p16)
    # Poisson intervals at low counts are longer on the upper side.
    result = fit(LOW_COUNT_HISTOGRAMS[0])
    assert float(result.p84 - result.mu_hat) > 1.1 * float(result.mu_hat - result.p16)


def test_stat_only_fit_equals_fit_with_nuisances_fixed(hep_stat_only_fit):
    frozen = make_profile_fit(lambda mu, alpha: HEP.jax_expected(mu, HEP.center), np.zeros(0), np.zeros(0))
    for counts in HEP.sample(np.random.default_rng(2), 3):
        stat_only, fixed = hep_stat_only_fit(counts), frozen(counts)
        for name in ("mu_hat", "p16", "p84", "nll_min", "sigma_hessian"):
            found, expected = getattr(stat_only, name), getattr(fixed, name)
            np.testing.assert_allclose(found, expected, rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(stat_only.nuisances_hat, np.float32(HEP.center))
        assert_matches_minos(stat_only, minos_interval(HEP, counts, fix_nuisances=True))


def test_vmap_over_pseudo_experiments_matches_single_fits(hep_fit, hep_toys):
    batch = hep_toys[:8]
    batched = jax.jit(jax.vmap(hep_fit))(batch)
    for i, counts in enumerate(batch):
        single = hep_fit(counts)
        sigma = float(single.sigma_hessian)
        for name in ("mu_hat", "p16", "p84"):
            found, expected = float(getattr(batched, name)[i]), float(getattr(single, name))
            assert found == pytest.approx(expected, abs=1e-3 * sigma), name

        def pulls(alpha):
            return (np.asarray(alpha, np.float64) - HEP.center) / HEP.sigma

        np.testing.assert_allclose(pulls(batched.nuisances_hat[i]), pulls(single.nuisances_hat), atol=1e-2)
        assert float(batched.nll_min[i]) == pytest.approx(float(single.nll_min), abs=1e-3)
        assert bool(batched.converged[i]) == bool(single.converged)


def test_sharded_batch_matches_unsharded(hep_stat_only_fit, hep_toys):
    mesh = jax.make_mesh((8,), ("pe",), axis_types=(jax.sharding.AxisType.Auto,))
    batch = jnp.asarray(hep_toys[:16])
    pe_axis = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("pe"))
    sharded = jax.device_put(batch, pe_axis)
    fit_batch = jax.jit(jax.vmap(hep_stat_only_fit))
    result = fit_batch(sharded)
    assert len(result.mu_hat.sharding.device_set) == 8
    np.testing.assert_allclose(result.p84, fit_batch(batch).p84, rtol=1e-6)


def test_fit_compiles_once_per_shape():
    traces = []

    def expected(mu, alpha):
        traces.append(None)
        return PEAK.jax_expected(mu, alpha)

    fit = make_profile_fit(expected, PEAK.center, PEAK.sigma)
    toys = PEAK.sample(np.random.default_rng(3), 3)
    fit(toys[0])
    calls_per_trace = len(traces)
    fit(toys[1])
    fit(jnp.asarray(toys[2]))
    jax.vmap(fit)(toys)  # batching reuses the traced fit
    assert len(traces) == calls_per_trace
    fit(toys[0].astype(np.int32))  # a new input type traces once more
    fit(toys[1].astype(np.int32))
    assert len(traces) == 2 * calls_per_trace


def test_profiled_interval_covers_while_stat_only_under_covers(hep_fit, hep_stat_only_fit, hep_toys):
    n = len(hep_toys)
    band = 3 * np.sqrt(ONE_SIGMA * (1 - ONE_SIGMA) / n)
    profiled = jax.jit(jax.vmap(hep_fit))(hep_toys)
    stat_only = jax.jit(jax.vmap(hep_stat_only_fit))(hep_toys)
    assert bool(jnp.all(profiled.converged)) and bool(jnp.all(stat_only.converged))

    def coverage(result):
        return float(jnp.mean((result.p16 <= HEP.mu_true) & (HEP.mu_true <= result.p84)))

    assert abs(coverage(profiled) - ONE_SIGMA) < band, coverage(profiled)
    assert coverage(stat_only) < ONE_SIGMA - band, coverage(stat_only)


def test_float64_fit_when_x64_is_enabled():
    # Toggling x64 inside this process would meet float32 constants cached by earlier tests, so the
    # float64 fit runs in a fresh interpreter.
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import jax.numpy as jnp, numpy as np
from test_likelihood import HEP, assert_matches_minos, make_profile_fit, minos_interval
counts = HEP.sample(np.random.default_rng(4), 1)[0]
result = make_profile_fit(HEP.jax_expected, HEP.center, HEP.sigma)(counts)
assert result.mu_hat.dtype == jnp.float64, result.mu_hat.dtype
assert_matches_minos(result, minos_interval(HEP, counts), fraction_of_width=1e-3)
"""
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]


def test_constraint_shapes_are_checked():
    with pytest.raises(ValueError, match="same length"):
        make_profile_fit(HEP.jax_expected, HEP.center, HEP.sigma[:5])
    with pytest.raises(ValueError, match="positive"):
        make_profile_fit(HEP.jax_expected, HEP.center, np.zeros(6))
