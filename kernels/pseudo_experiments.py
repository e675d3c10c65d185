"""Poisson pseudo-experiments over a weighted pool: one integer count per pool event.

``jax.random.poisson`` draws by rejection in a while loop; under ``vmap`` every lane waits for
the slowest, and each iteration costs fresh random bits. A pool's rates are small and bounded
(weights of ~1-10 expected events), so an inverse-CDF draw with one uniform per event and a
fixed, statically sized sum over k is exact to float32 precision and fuses into one XLA loop.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

# Above this bound the fixed sum would need too many terms (and exp(-rate) loses precision).
INVERSE_CDF_MAX_RATE = 30.0


def poisson_terms(max_rate: float) -> int:
    """Number of terms k = 0..K-1 so that P(k >= K) < 1e-12 for every rate <= max_rate."""
    return int(math.ceil(max_rate + 8.0 * math.sqrt(max_rate + 1.0) + 12.0))


def rate_ladder(max_rate: float) -> tuple[float, ...]:
    """Rate bounds with their own term counts: the largest power of two up to ``max_rate / 2`` (if
    at least 1), then ``max_rate``. Each rung is one more unrolled loop to compile (~1 s)."""
    lower = 2.0 ** math.floor(math.log2(max_rate / 2)) if max_rate >= 2 else 0.0
    return ((lower,) if lower >= 1 else ()) + (float(max_rate),)


def poisson_counts(key: jax.Array, rates: jax.Array, max_rate: float) -> jax.Array:
    """Poisson counts (float32, same shape as ``rates``) with means ``rates`` >= 0.

    ``max_rate`` is a static (host) upper bound of ``rates``; rates beyond it are an error of
    the caller. Below ``INVERSE_CDF_MAX_RATE`` the draw is ``poisson_counts_from_uniforms`` with
    one uniform per event; above it, ``jax.random.poisson``.
    """
    if max_rate > INVERSE_CDF_MAX_RATE:
        return jax.random.poisson(key, rates).astype(jnp.float32)
    return poisson_counts_from_uniforms(jax.random.uniform(key, rates.shape, jnp.float32), rates, max_rate)


def poisson_counts_from_uniforms(u: jax.Array, rates: jax.Array, max_rate: float) -> jax.Array:
    """Inverse-CDF Poisson counts ``#{k : CDF(k) < u * CDF(K-1)}`` for uniforms ``u`` in [0, 1).

    The truncated distribution is renormalised, so a uniform that lands above the float32 CDF
    cannot produce a count of K. ``max_rate`` (at most ``INVERSE_CDF_MAX_RATE``) is a static bound
    of ``rates``. The number of terms K follows the largest rate actually present
    (``lax.switch`` over ``rate_ladder(max_rate)``, e.g. K = 44 instead of 69 when a bound of 20 is
    loose and the rates stay below 8). Every K used keeps P(k >= K) < 1e-12, so the terms left out
    cannot change a float32 CDF that is already above 1/2: the counts are the same for every
    bound. (Under ``vmap`` the switch computes every branch.)
    """
    if max_rate > INVERSE_CDF_MAX_RATE:
        raise ValueError(
            f"max_rate {max_rate} is above {INVERSE_CDF_MAX_RATE}, where the inverse-CDF sum needs "
            "too many terms; use poisson_counts, which falls back to jax.random.poisson."
        )
    rates = rates.astype(jnp.float32)
    bounds = rate_ladder(max_rate)
    branches = [partial(_inverse_cdf_counts, n_terms=poisson_terms(bound)) for bound in bounds]
    if len(branches) == 1:
        return branches[0](u, rates)
    largest = jnp.max(rates) if rates.size else jnp.zeros((), jnp.float32)
    branch = sum((largest > bound).astype(jnp.int32) for bound in bounds[:-1])
    return jax.lax.switch(branch, branches, u, rates)


def _inverse_cdf_counts(u: jax.Array, rates: jax.Array, n_terms: int) -> jax.Array:
    """#{k < n_terms : CDF(k) < u * CDF(n_terms - 1)} for uniforms u and Poisson means rates."""
    # P(k + 1) = P(k) * rate / (k + 1), with the reciprocal as a float32 constant (what XLA makes of
    # a division by a constant anyway).
    term, cdf, cdfs = jnp.exp(-rates), jnp.zeros_like(rates), []
    for k in range(n_terms):
        cdf = cdf + term
        cdfs.append(cdf)
        term = term * rates * np.float32(1.0 / (k + 1))
    target = u * cdf  # cdf is now the total mass of the K terms
    # The CDF is non-decreasing, so #{k : CDF(k) < target} is 1 + the last such k. Written as one
    # chain of selects, XLA keeps the whole draw in one fused loop; a sum of K comparisons made it
    # split the draw into ~50 loops, each recomputing the CDF (measured 25x slower).
    count = jnp.zeros_like(rates)
    for k, cdf_k in enumerate(cdfs):
        count = jnp.where(cdf_k < target, np.float32(k + 1), count)
    return count
