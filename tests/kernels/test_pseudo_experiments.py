"""Inverse-CDF Poisson counts against the exact Poisson distribution (scipy) and jax.random.poisson."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxbench.kernels.pseudo_experiments import (
    INVERSE_CDF_MAX_RATE,
    poisson_counts,
    poisson_counts_from_uniforms,
    poisson_terms,
    rate_ladder,
)


@pytest.mark.parametrize("rate", [0.0, 0.03, 1.0, 6.5, 29.5])
def test_counts_follow_the_poisson_distribution(rate):
    n = 200_000
    counts = np.asarray(poisson_counts(jax.random.key(0), jnp.full((n,), rate), max_rate=max(rate, 1e-3)))
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    ks = np.arange(int(rate + 6 * np.sqrt(rate) + 6))
    observed = np.array([(counts == k).sum() for k in ks])
    expected = n * stats.poisson.pmf(ks, rate)
    keep = expected > 20  # chi-square over well-populated values of k
    if keep.sum() <= 1:
        assert observed[0] == n if rate == 0 else abs(observed[0] - expected[0]) < 5 * np.sqrt(expected[0])
        return
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4, (chi2, keep.sum())
    # No mass piles up at the truncation point.
    assert np.sum(counts >= poisson_terms(max(rate, 1e-3))) == 0


def test_mixed_rates_have_poisson_means_and_variances():
    rates = jnp.linspace(0.0, 8.0, 50)
    counts = jax.vmap(lambda k: poisson_counts(k, rates, 8.0))(jax.random.split(jax.random.key(3), 4000))
    mean, var, rates = np.asarray(counts.mean(0)), np.asarray(counts.var(0)), np.asarray(rates)
    assert np.all(np.abs(mean - rates) < 5 * np.sqrt(rates / 4000) + 1e-3)
    # The sample variance of n Poisson(r) counts has relative error sqrt((1/r + 2) / n).
    assert np.all(np.abs(var[1:] / rates[1:] - 1) < 5 * np.sqrt((1 / rates[1:] + 2) / 4000))


def test_same_key_same_counts_and_large_rates_fall_back():
    rates = jnp.full((1000,), 3.0)
    a = poisson_counts(jax.random.key(1), rates, 3.0)
    np.testing.assert_array_equal(a, poisson_counts(jax.random.key(1), rates, 3.0))
    assert not np.array_equal(a, poisson_counts(jax.random.key(2), rates, 3.0))
    big = poisson_counts(jax.random.key(1), jnp.full((20_000,), 200.0), 2 * INVERSE_CDF_MAX_RATE + 200)
    assert abs(float(big.mean()) - 200.0) < 5 * np.sqrt(200.0 / 20_000)


def test_counts_do_not_depend_on_the_rate_bound():
    # The number of CDF terms follows the largest rate present; the terms a looser bound adds
    # cannot change a float32 CDF above 1/2, so the counts stay the same, event by event.
    rates = jnp.concatenate([jnp.linspace(0.0, 6.7, 5000), jnp.full((5000,), 0.06)])
    key = jax.random.key(9)
    tight = np.asarray(poisson_counts(key, rates, 6.8))
    for bound in (8.0, 20.14, INVERSE_CDF_MAX_RATE):
        np.testing.assert_array_equal(np.asarray(poisson_counts(key, rates, bound)), tight)
    # The widest branch of the ladder gives the same counts as well (K = 69 for a bound of 20.14).
    u = jax.random.uniform(key, rates.shape)
    np.testing.assert_array_equal(
        np.asarray(poisson_counts_from_uniforms(u, rates.at[0].set(19.0), 20.14))[1:], tight[1:]
    )
    assert rate_ladder(20.14) == (8.0, 20.14) and rate_ladder(6.8) == (2.0, 6.8) and rate_ladder(1.5) == (1.5,)


def test_counts_from_uniforms_are_the_keyed_counts():
    rates = jnp.linspace(0.0, 5.0, 1000)
    key = jax.random.key(4)
    np.testing.assert_array_equal(
        np.asarray(poisson_counts_from_uniforms(jax.random.uniform(key, rates.shape), rates, 5.0)),
        np.asarray(poisson_counts(key, rates, 5.0)),
    )
    with pytest.raises(ValueError, match="jax.random.poisson"):
        poisson_counts_from_uniforms(jnp.zeros(3), jnp.ones(3), 2 * INVERSE_CDF_MAX_RATE)
