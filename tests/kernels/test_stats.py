"""Study reductions against numpy/scipy loops: group statistics, ranks, correlations, histograms,
centroids and contingency counts."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxbench.kernels import stats


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 300), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_group_stats_matches_a_numpy_loop(n, groups, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(3.0, 2.0, n)
    ids = rng.integers(-1, groups + 1, n)  # includes out-of-range ids, which are dropped
    got = stats.group_stats(jnp.asarray(values, jnp.float32), jnp.asarray(ids), groups)
    for g in range(groups):
        members = values[ids == g]
        assert float(got.count[g]) == members.size
        if members.size:
            np.testing.assert_allclose(float(got.mean[g]), members.mean(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(float(got.std[g]), members.std(), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(float(got.sem[g]), members.std() / np.sqrt(members.size), rtol=1e-4, atol=1e-4)
        else:
            assert float(got.mean[g]) == 0.0 and float(got.sem[g]) == 0.0


def test_group_stats_weighted_mean():
    got = stats.group_stats(jnp.array([1.0, 3.0, 10.0]), jnp.array([0, 0, 1]), 2, weights=jnp.array([1.0, 3.0, 2.0]))
    np.testing.assert_allclose(np.asarray(got.mean), [2.5, 10.0])
    np.testing.assert_allclose(np.asarray(got.count), [4.0, 2.0])


def test_rank_and_correlations_match_scipy():
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=400), 1)  # many ties
    y = x**3 + rng.normal(scale=0.5, size=400)
    np.testing.assert_allclose(np.asarray(stats.rank(jnp.asarray(x))), scipy.stats.rankdata(x))
    np.testing.assert_allclose(
        float(stats.pearson(jnp.asarray(x), jnp.asarray(y))), scipy.stats.pearsonr(x, y)[0], rtol=1e-5
    )
    np.testing.assert_allclose(
        float(stats.spearman(jnp.asarray(x), jnp.asarray(y))), scipy.stats.spearmanr(x, y)[0], rtol=1e-5
    )
    fit = stats.linear_fit(jnp.asarray(x), jnp.asarray(y))
    ref = scipy.stats.linregress(x, y)
    np.testing.assert_allclose(
        [float(fit.slope), float(fit.intercept), float(fit.slope_err), float(fit.r2)],
        [ref.slope, ref.intercept, ref.stderr, ref.rvalue**2],
        rtol=1e-4,
    )
    assert float(stats.pearson(jnp.ones(5), jnp.arange(5.0))) == 0.0  # constant input: no NaN


def test_histogram2d_matches_numpy():
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-1, 4, 1000), rng.normal(size=1000)
    y[::97] = np.nan
    xe, ye = np.linspace(0, 3, 4), np.linspace(-2, 2, 9)
    got = np.asarray(stats.histogram2d(jnp.asarray(x), jnp.asarray(y), jnp.asarray(xe), jnp.asarray(ye)))
    ok = ~np.isnan(y)
    ref, _, _ = np.histogram2d(x[ok], y[ok], bins=[xe, ye])
    np.testing.assert_array_equal(got, ref)
    # The top edge belongs to the last bin, as in numpy.
    edge = np.asarray(stats.histogram2d(jnp.array([3.0]), jnp.array([2.0]), jnp.asarray(xe), jnp.asarray(ye)))
    assert edge[-1, -1] == 1 and edge.sum() == 1


def test_centroid_of_a_shifted_blob_moves_by_the_shift():
    yy, xx = np.mgrid[:32, :32]
    blob = np.exp(-((yy - 12.0) ** 2 + (xx - 16.0) ** 2) / 8.0)
    shifted = np.exp(-((yy - 17.0) ** 2 + (xx - 13.0) ** 2) / 8.0)
    c = np.asarray(stats.centroid(jnp.asarray(np.stack([blob, shifted]), jnp.float32)))
    np.testing.assert_allclose(c[0], [12.0, 16.0], atol=1e-4)
    np.testing.assert_allclose(c[1] - c[0], [5.0, -3.0], atol=1e-4)
    assert np.all(np.isnan(np.asarray(stats.centroid(jnp.zeros((4, 4))))))


def test_contingency_matches_counts():
    rng = np.random.default_rng(3)
    f, o = rng.uniform(0, 2, (3, 16, 16)), rng.uniform(0, 2, (3, 16, 16))
    c = stats.contingency(jnp.asarray(f), jnp.asarray(o), 1.0, axes=(1, 2))
    for i in range(3):
        fi, oi = f[i] >= 1, o[i] >= 1
        hits, misses, fa = (fi & oi).sum(), (~fi & oi).sum(), (fi & ~oi).sum()
        assert (float(c.hits[i]), float(c.misses[i]), float(c.false_alarms[i])) == (hits, misses, fa)
        assert float(c.correct_negatives[i]) == (~fi & ~oi).sum()
        np.testing.assert_allclose(float(c.csi[i]), hits / (hits + misses + fa), rtol=1e-6)
    empty = stats.contingency(jnp.zeros((4, 4)), jnp.zeros((4, 4)), 1.0)
    assert np.isnan(float(empty.csi))


@pytest.mark.parametrize("n", [1, 2])
def test_linear_fit_degenerate_inputs_stay_finite(n):
    fit = stats.linear_fit(jnp.arange(float(n)), jnp.arange(float(n)))
    assert all(np.isfinite(float(v)) for v in fit)
