"""Blockwise segment sums against float64 numpy (np.bincount) and the float32 drift they avoid."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from jaxbench.kernels.segments import segment_sum


def test_large_histogram_of_similar_weights_is_accurate_in_float32():
    rng = np.random.default_rng(0)
    n, bins = 1_000_000, 12
    weights = rng.uniform(4.9, 5.1, n).astype(np.float32)  # a Z->tautau pool: many similar weights
    ids = rng.integers(0, bins, n).astype(np.int32)
    reference = np.bincount(ids, weights.astype(np.float64), bins)
    ours = np.asarray(jax.jit(segment_sum, static_argnums=2)(jnp.asarray(weights), jnp.asarray(ids), bins))
    np.testing.assert_allclose(ours, reference, rtol=2e-6)
    # The one-at-a-time scatter drifts by far more (this is why the kernel exists).
    naive = np.asarray(jax.ops.segment_sum(jnp.asarray(weights), jnp.asarray(ids), bins))
    assert np.max(np.abs(naive / reference - 1)) > 10 * np.max(np.abs(ours / reference - 1))


@given(st.integers(1, 5000), st.integers(1, 20), st.integers(0, 2**31 - 1))
def test_matches_numpy_for_any_size_and_drops_out_of_range_ids(n, bins, seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=n).astype(np.float32)
    ids = rng.integers(-1, bins + 1, n).astype(np.int32)
    keep = (ids >= 0) & (ids < bins)
    reference = np.bincount(ids[keep], data[keep].astype(np.float64), bins)
    ours = np.asarray(segment_sum(jnp.asarray(data), jnp.asarray(ids), bins, block=64))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)
