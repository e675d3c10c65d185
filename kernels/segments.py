"""Per-segment reductions of per-sample values (histograms, per-group sums) that stay accurate in float32.

``jax.ops.segment_sum`` adds one value at a time into each segment's accumulator. For a pool of
~1e5-1e6 event weights of similar size, every addition rounds to the accumulator's last bit in the
same direction, and the float32 total of a 1e6-event histogram bin drifts by ~0.3% — more than
the Poisson error of that bin. Summing block by block (each block a small sum, then the block
sums) bounds the error by ~(block + n / block) rounding steps instead of n.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BLOCK = 1024


def segment_sum(data: jax.Array, segment_ids: jax.Array, num_segments: int, block: int = BLOCK) -> jax.Array:
    """Sum of ``data`` per segment, blockwise: (n,) values, (n,) ids in [0, num_segments) -> (num_segments,).

    Ids outside the range are dropped (as in ``jax.ops.segment_sum``). The one-hot comparison is
    fused by XLA with the block reduction, so nothing of size (n, num_segments) is stored.
    """
    n = data.shape[0]
    padded = -(-n // block) * block
    data = jnp.pad(data, (0, padded - n))
    ids = jnp.pad(segment_ids, (0, padded - n), constant_values=-1)
    one_hot = ids.reshape(-1, block, 1) == jnp.arange(num_segments)[None, None, :]
    block_sums = jnp.sum(jnp.where(one_hot, data.reshape(-1, block, 1), 0.0), axis=1)
    return _blockwise_total(block_sums, block)


def _blockwise_total(values: jax.Array, block: int) -> jax.Array:
    """Sum over axis 0 of (m, S) in blocks of ``block`` rows, recursively (static shapes)."""
    while values.shape[0] > block:
        m = values.shape[0]
        padded = -(-m // block) * block
        values = jnp.pad(values, ((0, padded - m), (0, 0))).reshape(-1, block, values.shape[1]).sum(axis=1)
    return jnp.sum(values, axis=0)


def weighted_column_sums(weights: jax.Array, fractions: jax.Array, block: int = BLOCK) -> jax.Array:
    """sum_i weights_i * fractions_ib, blockwise: (n,) and (n, S) -> (S,) (soft histograms)."""
    n, s = fractions.shape
    padded = -(-n // block) * block
    products = jnp.pad(weights[:, None] * fractions, ((0, padded - n), (0, 0)))
    return _blockwise_total(products.reshape(-1, block, s).sum(axis=1), block)
