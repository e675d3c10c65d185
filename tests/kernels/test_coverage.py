"""The quantiles (coverage) score against hand computations and a float64 re-implementation."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxbench.kernels.coverage import (
    OFFICIAL,
    PROPOSAL,
    bootstrap_coverage_score,
    codabench_scores,
    coverage_penalty,
    coverage_score,
    per_group_coverage,
)

score_fn = jax.jit(coverage_score)


def reference_quantiles_score(mu_true, p16, p84, target=0.6827, eps=1e-3, band_sigmas=2.0):
    """Plain-Python float64 quantiles score: (score, width, coverage, penalty)."""
    n = len(p16)
    width = sum(abs(hi - lo) for lo, hi in zip(p16, p84)) / n
    coverage = sum(1 for m, lo, hi in zip(mu_true, p16, p84) if lo <= m <= hi) / n
    sigma68 = math.sqrt(target * (1 - target) / n)
    band_lo, band_hi = target - band_sigmas * sigma68, target + band_sigmas * sigma68
    if coverage < band_lo:
        penalty = 1 + abs((coverage - band_lo) / sigma68) ** 4
    elif coverage > band_hi:
        penalty = 1 + abs((coverage - band_hi) / sigma68) ** 3
    else:
        penalty = 1.0
    return -math.log((width + eps) * penalty), width, coverage, penalty


def covering_set(n, n_inside, mu=1.0, half_width=0.25):
    """n intervals of width 2 * half_width; the first n_inside contain mu, the rest lie above it."""
    centre = np.where(np.arange(n) < n_inside, mu, mu + 1.0).astype(np.float32)
    return np.full(n, mu, np.float32), centre - half_width, centre + half_width


@st.composite
def interval_sets(draw, min_n=1, max_n=48):
    """(mu_true, p16, p84) float32 (N,), some endpoints exactly on mu_true."""
    n = draw(st.integers(min_n, max_n))
    offset = st.one_of(st.just(0.0), st.floats(-1.0, 1.0, width=32))
    mu = np.array(draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=n, max_size=n)))
    below = np.array(draw(st.lists(offset, min_size=n, max_size=n)))
    above = np.array(draw(st.lists(offset, min_size=n, max_size=n)))
    mu = mu.astype(np.float32)
    ends = np.sort(np.stack([mu - below.astype(np.float32), mu + above.astype(np.float32)]), 0)
    return mu, ends[0], ends[1]


# --- hand-computed cases (official convention: target 0.6827, eps 1e-3, band 2 sigma68) ----------


def test_coverage_below_band_is_punished_with_fourth_power():
    # N = 20, widths 0.5, 5 of 20 cover: c = 0.25.
    # sigma68 = sqrt(0.6827 * 0.3173 / 20) = sqrt(0.010831036) = 0.104072261
    # lo = 0.6827 - 2 * 0.104072261 = 0.474555478 > c
    # f = 1 + ((0.25 - 0.474555478) / 0.104072261)^4 = 1 + 2.157688091^4 = 22.674778
    # s = -ln((0.5 + 0.001) * 22.674778) = -ln(11.360064) = -2.430104
    result = score_fn(*covering_set(20, 5))
    np.testing.assert_allclose(result.coverage, 0.25)
    np.testing.assert_allclose(result.width, 0.5)
    np.testing.assert_allclose(result.penalty, 22.674778, rtol=1e-5)
    np.testing.assert_allclose(result.score, -2.430104, rtol=1e-5)
    assert float(result.n) == 20


def test_coverage_above_band_is_punished_with_cube():
    # N = 20, all cover: c = 1; hi = 0.6827 + 2 * 0.104072261 = 0.890844522 < c
    # f = 1 + ((1 - 0.890844522) / 0.104072261)^3 = 1 + 1.048843151^3 = 2.153803
    # s = -ln(0.501 * 2.153803) = -ln(1.079055) = -0.076086
    result = score_fn(*covering_set(20, 20))
    np.testing.assert_allclose(result.penalty, 2.153803, rtol=1e-5)
    np.testing.assert_allclose(result.score, -0.076086, rtol=1e-4)


def test_coverage_inside_band_costs_only_width():
    # N = 20, 14 of 20 cover: c = 0.7 in [0.474555, 0.890845] so f = 1; s = -ln(0.501) = 0.691149
    result = score_fn(*covering_set(20, 14))
    assert float(result.penalty) == 1.0
    np.testing.assert_allclose(result.score, 0.691149, rtol=1e-5)


def test_interval_ends_are_inclusive():
    # mu = 1: [1, 2] (mu on p16), [0, 1] (mu on p84), [1, 1] (zero width) cover; [1.5, 2] does not.
    # c = 3/4 in [0.217275, 1.148125] (N = 4) so f = 1; w = (1 + 1 + 0 + 0.5) / 4 = 0.625
    # s = -ln(0.625 + 0.001) = -ln(0.626) = 0.468405
    p16 = jnp.array([1.0, 0.0, 1.0, 1.5])
    p84 = jnp.array([2.0, 1.0, 1.0, 2.0])
    result = score_fn(1.0, p16, p84)
    assert float(result.coverage) == 0.75
    np.testing.assert_allclose(result.width, 0.625)
    np.testing.assert_allclose(result.score, 0.468405, rtol=1e-5)


def test_proposal_convention_changes_centre_and_eps():
    # As the below-band case with target 0.68, eps 1e-2:
    # sigma68 = sqrt(0.68 * 0.32 / 20) = 0.104307238, lo = 0.68 - 0.208614477 = 0.471385523
    # f = 1 + ((0.25 - 0.471385523) / 0.104307238)^4 = 1 + 2.122436815^4 = 21.292665
    # s = -ln((0.5 + 0.01) * 21.292665) = -2.385018
    result = score_fn(*covering_set(20, 5), **PROPOSAL._asdict())
    np.testing.assert_allclose(result.penalty, 21.292665, rtol=1e-5)
    np.testing.assert_allclose(result.score, -2.385018, rtol=1e-5)
    assert OFFICIAL == (0.6827, 1e-3, 2.0)


def test_penalty_is_continuous_at_band_edges():
    n = 50.0
    sigma68 = math.sqrt(0.6827 * 0.3173 / n)
    for edge in (0.6827 - 2 * sigma68, 0.6827 + 2 * sigma68):
        for c in (edge - 1e-4, edge, edge + 1e-4):
            np.testing.assert_allclose(coverage_penalty(c, n), 1.0, atol=1e-5)


# --- independent float64 reference and properties ------------------------------------------------


@given(interval_sets())
def test_agrees_with_float64_reference(intervals):
    mu, p16, p84 = intervals
    score, width, coverage, penalty = reference_quantiles_score(mu.tolist(), p16.tolist(), p84.tolist())
    result = score_fn(mu, p16, p84)
    np.testing.assert_allclose(result.width, width, rtol=1e-5, atol=1e-6)
    assert float(result.coverage) == pytest.approx(coverage, rel=1e-6)
    np.testing.assert_allclose(result.penalty, penalty, rtol=1e-4)
    np.testing.assert_allclose(result.score, score, rtol=1e-5, atol=1e-4)


@given(interval_sets(), st.floats(0.01, 1.0))
def test_score_decreases_when_widths_grow_with_coverage_fixed(intervals, grow):
    mu, p16, p84 = intervals
    # Extend each interval on the side away from mu_true: no PE enters or leaves its interval.
    away_up = mu <= (p16 + p84) / 2
    wider16 = np.where(away_up, p16, p16 - np.float32(grow))
    wider84 = np.where(away_up, p84 + np.float32(grow), p84)
    before, after = score_fn(mu, p16, p84), score_fn(mu, wider16, wider84)
    assert float(after.coverage) == float(before.coverage)
    assert float(after.score) < float(before.score)


@given(st.floats(0.0, 1.0), st.integers(1, 10_000))
def test_penalty_is_at_least_one(coverage, n):
    assert float(coverage_penalty(coverage, float(n))) >= 1.0


@given(st.floats(0.01, 0.99), st.integers(1, 10_000))
def test_penalty_is_one_inside_band(u, n):
    sigma68 = math.sqrt(0.6827 * 0.3173 / n)
    coverage = 0.6827 - 2 * sigma68 + u * 4 * sigma68
    assert float(coverage_penalty(coverage, float(n))) == 1.0


@given(interval_sets(), st.randoms(use_true_random=False))
def test_score_is_permutation_invariant(intervals, rng):
    mu, p16, p84 = intervals
    order = np.arange(len(mu))
    rng.shuffle(order)
    chex.assert_trees_all_close(
        score_fn(mu, p16, p84), score_fn(mu[order], p16[order], p84[order]), rtol=1e-5, atol=1e-6
    )


@given(interval_sets(), st.data())
def test_mask_equals_dropping_rows(intervals, data):
    mu, p16, p84 = intervals
    n = len(mu)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    mask[data.draw(st.integers(0, n - 1))] = True
    padded16 = np.where(mask, p16, np.nan).astype(np.float32)  # padding must never leak
    padded84 = np.where(mask, p84, np.inf).astype(np.float32)
    chex.assert_trees_all_close(
        score_fn(mu, padded16, padded84, mask=mask), score_fn(mu[mask], p16[mask], p84[mask]), rtol=1e-5, atol=1e-6
    )


# --- per group, bootstrap, codabench, compilation -------------------------------------------------


def test_per_group_matches_numpy_loop():
    rng = np.random.default_rng(0)
    n, num_groups = 64, 5
    groups = rng.integers(0, 4, n)  # group 4 stays empty
    mu = np.array([0.5, 1.0, 1.5, 2.0], np.float32)[groups]
    centre = (mu + rng.normal(0, 0.3, n)).astype(np.float32)
    half = rng.uniform(0.05, 0.5, n).astype(np.float32)
    p16, p84 = centre - half, centre + half
    mask = rng.random(n) < 0.8
    result = jax.jit(per_group_coverage, static_argnames="num_groups")(mu, p16, p84, groups, num_groups, mask=mask)
    for g in range(num_groups):
        rows = (groups == g) & mask
        if not rows.any():
            assert float(result.n[g]) == 0 and np.isnan(result.coverage[g])
            continue
        score, width, coverage, _ = reference_quantiles_score(mu[rows].tolist(), p16[rows].tolist(), p84[rows].tolist())
        assert float(result.n[g]) == rows.sum()
        np.testing.assert_allclose(result.width[g], width, rtol=1e-5)
        np.testing.assert_allclose(result.coverage[g], coverage, rtol=1e-6)
        np.testing.assert_allclose(result.score[g], score, rtol=1e-5, atol=1e-5)


boot_fn = jax.jit(bootstrap_coverage_score, static_argnames="num_resamples")


def _spread_intervals(n=200, seed=1):
    rng = np.random.default_rng(seed)
    centre = (1.0 + rng.normal(0, 0.3, n)).astype(np.float32)
    return np.ones(n, np.float32), centre - np.float32(0.3), centre + np.float32(0.3)


def test_bootstrap_is_deterministic_per_key():
    intervals = _spread_intervals()
    first = boot_fn(jax.random.key(3), *intervals, num_resamples=2000)
    chex.assert_trees_all_equal(first, boot_fn(jax.random.key(3), *intervals, num_resamples=2000))
    other = boot_fn(jax.random.key(4), *intervals, num_resamples=2000)
    assert not np.array_equal(first.score, other.score)
    # resample i depends on fold_in(key, i) only, not on how many are drawn (batched sums may
    # round differently, hence the float32 tolerance)
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: x[:50], first), boot_fn(jax.random.key(3), *intervals, num_resamples=50), rtol=1e-5
    )


def test_bootstrap_coverage_spread_is_binomial():
    mu, p16, p84 = _spread_intervals()
    samples = boot_fn(jax.random.key(0), mu, p16, p84, num_resamples=2000)
    c = float(score_fn(mu, p16, p84).coverage)
    np.testing.assert_allclose(np.std(samples.coverage), math.sqrt(c * (1 - c) / 200), rtol=0.1)
    assert np.isfinite(samples.score).all() and float(samples.score.std()) > 0


def test_bootstrap_ignores_padding_and_has_no_spread_for_identical_pes():
    mask = np.arange(200) < 120
    p16 = np.where(mask, 0.75, np.nan).astype(np.float32)
    p84 = np.where(mask, 1.25, np.nan).astype(np.float32)
    samples = boot_fn(jax.random.key(1), np.ones(200, np.float32), p16, p84, 2000, mask=mask)
    point = score_fn(1.0, p16, p84, mask=mask)
    np.testing.assert_allclose(samples.score, np.full(2000, float(point.score)), rtol=1e-6)
    assert (np.asarray(samples.n) == 120).all()


def test_codabench_scores_layout_and_values():
    # mu = 1, mu_hat = 1.5 and 0.5, intervals [1, 2] and [0, 1]: both cover (ends inclusive).
    # delta = half-width = 0.5, d = +-0.5: rmse_i = sqrt(0.25 + (0.25 - 0.25)^2) = 0.5,
    # mae_i = 0.5 + |0.5 - 0.5| = 0.5; interval 1, coverage 1 (hi = 1.348 for N = 2, f = 1),
    # quantiles_score = -ln(1.001) = -0.0009995
    mu_hat, p16, p84 = np.array([1.5, 0.5]), np.array([1.0, 0.0]), np.array([2.0, 1.0])
    scores = codabench_scores(1.0, mu_hat, p16, p84)
    assert list(scores) == ["quantiles_score", "interval", "coverage", "rmse", "mae", "n_pseudo_experiments"]
    assert all(isinstance(v, (float, int)) for v in scores.values())
    expected = {
        "interval": 1.0,
        "coverage": 1.0,
        "rmse": 0.5,
        "mae": 0.5,
        "quantiles_score": -math.log(1.001),
        "n_pseudo_experiments": 2,
    }
    assert scores == pytest.approx(expected, rel=1e-6, abs=1e-6)  # float32
    # explicit delta_mu_hat = 0.25: rmse_i = sqrt(0.25 + (0.25 - 0.0625)^2) = 0.534000,
    # mae_i = 0.5 + |0.5 - 0.25| = 0.75
    scores = codabench_scores(1.0, mu_hat, p16, p84, delta_mu_hat=np.full(2, 0.25))
    assert scores["rmse"] == pytest.approx(0.5340002, rel=1e-6)
    assert scores["mae"] == pytest.approx(0.75, rel=1e-6)


def test_jit_compiles_once():
    score = jax.jit(chex.assert_max_traces(coverage_score, n=1))
    groups = jax.jit(chex.assert_max_traces(per_group_coverage, n=1), static_argnums=4)
    boot = jax.jit(chex.assert_max_traces(bootstrap_coverage_score, n=1), static_argnums=4)
    for seed in range(3):
        mu, p16, p84 = _spread_intervals(n=32, seed=seed)
        mask = np.random.default_rng(seed).random(32) < 0.7
        score(mu, p16, p84, mask=mask)
        groups(mu, p16, p84, np.arange(32) % 4, 4, mask=mask)
        boot(jax.random.key(seed), mu, p16, p84, 8, mask=mask)
