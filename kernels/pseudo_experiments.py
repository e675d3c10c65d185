"""Poisson pseudo-experiments over a weighted pool: one integer count per pool event.

``jax.random.poisson`` draws by rejection in a while loop; under ``vmap`` every lane waits for
the slowest, and each iteration costs fresh random bits. A pool's rates are small and bounded
(weights of ~1-10 expected events), so an inverse-CDF draw with one uniform per event and a
fixed, statically sized sum over k is exact to float32 precision and fuses into one XLA loop.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Above this bound the fixed sum would need too many terms (and exp(-rate) loses precision).
INVERSE_CDF_MAX_RATE = 30.0


def poisson_terms(max_rate: float) -> int:
    """Number of terms k = 0..K-1 so that P(k >= K) < 1e-12 for every rate <= max_rate."""
    return int(math.ceil(max_rate + 8.0 * math.sqrt(max_rate + 1.0) + 12.0))


def poisson_counts(key: jax.Array, rates: jax.Array, max_rate: float) -> jax.Array:
    """Poisson counts (float32, same shape as ``rates``) with means ``rates`` >= 0.

    ``max_rate`` is a static (host) upper bound of ``rates``; rates beyond it are an error of
    the caller. Below ``INVERSE_CDF_MAX_RATE`` the draw is ``#{k : CDF(k) < u * CDF(K-1)}``
    with one uniform u per event (the truncated distribution renormalised, so a uniform that
    lands above the float32 CDF cannot produce a count of K); above it, ``jax.random.poisson``.
    """
    if max_rate > INVERSE_CDF_MAX_RATE:
        return jax.random.poisson(key, rates).astype(jnp.float32)
    rates = rates.astype(jnp.float32)
    n_terms = poisson_terms(max_rate)
    u = jax.random.uniform(key, rates.shape, jnp.float32)
    first = jnp.exp(-rates)  # P(0)

    def next_term(k, term):
        return term * rates / (k + 1.0)  # P(k + 1) from P(k)

    def total_mass(k, carry):
        term, cdf = carry
        return next_term(k, term), cdf + term

    _, total = jax.lax.fori_loop(0, n_terms, total_mass, (first, jnp.zeros_like(rates)), unroll=True)
    target = u * total

    def count_below(k, carry):
        term, cdf, count = carry
        cdf = cdf + term
        return next_term(k, term), cdf, count + (cdf < target).astype(jnp.float32)

    zeros = jnp.zeros_like(rates)
    return jax.lax.fori_loop(0, n_terms, count_below, (first, zeros, zeros), unroll=True)[2]
