"""Pseudo-experiments (PEs) as integer counts over a fixed event pool, never materialised rows.

One PE for (mu_true, nu_true) passes the whole pool through the systematics and draws a Poisson
count for every pool event with mean weight x mu (signal) or weight x process scale
(backgrounds; the scales are inside the systematics). A sum of Poisson counts is Poisson, so
every histogram of the counts has exactly the PE's distribution.

The soft-MET term is soft_met x a fixed standard-normal direction per pool event (``met_noise``,
drawn once per pool), so it acts on each event deterministically, like tes and jes, and the
templates can follow it exactly. The challenge redraws that noise for every PE; over a fixed pool
this adds event migrations between score bins that no binned likelihood models (measured: pull
width 1.8 at soft_met > 2 GeV with per-PE noise), so jaxbench treats the noise as an event property.

Many PEs over one pool share everything the nuisances do not change: ``prepare_pool`` computes it
once (``systematics.pool_invariants``), sorts the events by tau pT and cuts them into blocks, and
``draw_counts`` draws a PE's counts on it, identical to ``draw_pseudo_experiment``'s.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels.pseudo_experiments import INVERSE_CDF_MAX_RATE, poisson_counts, poisson_counts_from_uniforms

from . import schema
from .systematics import PoolInvariants, apply_systematics, cuts_passed, pool_invariants, scale_weights

# A prepared pool is cut into blocks of about BLOCK_EVENTS events (measured on 2 CPU cores with
# 270k events: 8k-23k per block within 5%, 34k 5-13% slower, the whole pool at once ~20% slower),
# each a multiple of EVENT_BLOCK, the block of the accurate soft-histogram sums.
EVENT_BLOCK = 1024
BLOCK_EVENTS = 16_384


class PseudoExperiment(NamedTuple):
    """Shapes: pri (n, 16) the pool after systematics; counts (n,) float32 events drawn per pool event."""

    pri: jax.Array
    counts: jax.Array


def max_event_rate(pool: schema.EventPool, mu_max: float) -> float:
    """A static bound of any pool event's Poisson mean over the challenge's prior ranges."""
    weight_scale = max(float(mu_max), 2.0 * 1.01)  # diboson_scale <= 2, bkg_scale <= 1.01
    return float(np.max(np.asarray(pool.weights))) * weight_scale


def pool_met_noise(key: jax.Array, pool: schema.EventPool) -> jax.Array:
    """The fixed soft-MET direction (n, 2) of every pool event: standard normals."""
    return jax.random.normal(key, (pool.pri.shape[0], 2), jnp.float32)


def draw_pseudo_experiment(
    key: jax.Array,
    pool: schema.EventPool,
    met_noise: jax.Array,
    mu_true: jax.Array,
    nu_true: jax.Array,
    max_rate: float,
) -> PseudoExperiment:
    """One PE: systematics on the pool, then a Poisson count per event (zero for failing events).

    ``met_noise`` (n, 2) from ``pool_met_noise``; ``max_rate`` a static bound of the per-event
    means (``max_event_rate``).
    """
    pri, weights, passed = apply_systematics(pool.pri, pool.weights, pool.process, nu_true, met_noise)
    rate = jnp.where(passed, weights, 0.0) * jnp.where(pool.process == schema.SIGNAL, mu_true, 1.0)
    return PseudoExperiment(pri, poisson_counts(key, rate, max_rate))


def pe_key(root: jax.Array, index: jax.Array) -> jax.Array:
    """The key of PE number ``index``: independent of batch size, chunking and device count."""
    return jax.random.fold_in(root, index)


class PreparedPool(NamedTuple):
    """A pool made ready for many PEs (``prepare_pool``): sorted, padded and cut into blocks.

    ``invariants`` holds ``systematics.pool_invariants`` of the events, ``weights`` and ``process``
    theirs. Sorted by decreasing PRI_had_pt (``had_pt_order``), the events that fail the had-pT
    cut at a PE's tes fill whole blocks at the end, which a PE skips (``block_passes``). The
    pool is padded with zero-weight copies of its last event (a zero weight draws no event, so the
    padding changes no histogram) and laid out as (n_blocks, block_size), block_size a multiple of
    EVENT_BLOCK: a PE scores one block at a time, with the block's intermediates in cache.
    ``source_index`` is each event's index in the pool (its uniform for the Poisson draw).

    Shapes: invariants, weights, process, source_index (n_blocks, block_size).
    """

    invariants: PoolInvariants
    weights: jax.Array
    process: jax.Array
    source_index: jax.Array


def prepare_pool(
    pool: schema.EventPool, met_noise: jax.Array, order: jax.Array | None = None, n_blocks: int | None = None
) -> PreparedPool:
    """Everything about ``pool`` (and its soft-MET directions) that no PE changes, computed once.

    ``order`` is the permutation the events take, ``had_pt_order(pool)`` for blocks a PE can skip
    (default: pool order, e.g. inside ``jit``, where XLA's sort of 270k events costs ~60 ms on 2
    CPU cores). ``n_blocks`` (static) defaults to about one block per BLOCK_EVENTS events.
    """
    n = pool.pri.shape[0]
    n_blocks = max(1, round(n / BLOCK_EVENTS)) if n_blocks is None else int(n_blocks)
    block_size = -(-n // (n_blocks * EVENT_BLOCK)) * EVENT_BLOCK
    pad = n_blocks * block_size - n
    in_pool_order = order is None
    order = jnp.arange(n, dtype=jnp.int32) if in_pool_order else jnp.asarray(order, jnp.int32)

    def ordered_blocks(x, mode="edge"):
        padded = jnp.pad(x if in_pool_order else x[order], [(0, pad)] + [(0, 0)] * (x.ndim - 1), mode=mode)
        return padded.reshape((n_blocks, block_size) + x.shape[1:])

    invariants = pool_invariants(ordered_blocks(pool.pri), ordered_blocks(met_noise))
    source_index = jnp.concatenate([order, jnp.arange(n, n + pad, dtype=jnp.int32)]).reshape(n_blocks, block_size)
    return PreparedPool(
        invariants, ordered_blocks(pool.weights, mode="constant"), ordered_blocks(pool.process), source_index
    )


def had_pt_order(pool: schema.EventPool) -> np.ndarray:
    """The events by decreasing PRI_had_pt (host numpy, stable): those that fail the had-pT cut at a
    PE's tes then fill whole blocks at the end of a prepared pool."""
    return np.argsort(-np.asarray(pool.pri[:, schema.PRI["PRI_had_pt"]]), kind="stable").astype(np.int32)


def draw_counts(
    key: jax.Array, prepared: PreparedPool, mu_true: jax.Array, nu_true: jax.Array, max_rate: float
) -> jax.Array:
    """The Poisson counts (n_blocks, block_size) of one PE on a prepared pool.

    Below INVERSE_CDF_MAX_RATE identical to ``draw_pseudo_experiment(key, ...).counts`` of the
    unprepared pool, event by event (zeros for the padding): each event gets the uniform of its
    index in the pool. The uniforms are drawn for the padded pool size; those of the first n
    indices do not depend on the padding (threefry counts per element).
    """
    passed = cuts_passed(prepared.invariants, nu_true)
    weights = jnp.where(passed, scale_weights(prepared.weights, prepared.process, nu_true), 0.0)
    rate = weights * jnp.where(prepared.process == schema.SIGNAL, mu_true, 1.0)
    if max_rate > INVERSE_CDF_MAX_RATE:  # jax.random.poisson: draw in pool order, then sort
        in_pool_order = jnp.zeros(rate.size, rate.dtype).at[prepared.source_index.reshape(-1)].set(rate.reshape(-1))
        return poisson_counts(key, in_pool_order, max_rate)[prepared.source_index]
    u = jax.random.uniform(key, (rate.size,), jnp.float32)[prepared.source_index]
    return poisson_counts_from_uniforms(u, rate, max_rate)


def block_passes(prepared: PreparedPool, nu_true: jax.Array) -> jax.Array:
    """(n_blocks,) bool: whether any event of the block passes the cuts at ``nu_true``; the others
    draw no event, so a PE can skip them."""
    return jnp.any(cuts_passed(prepared.invariants, nu_true), axis=1)
