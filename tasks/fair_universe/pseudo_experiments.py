"""Pseudo-experiments (PEs) as integer counts over a fixed event pool, never materialised rows.

One PE for (mu_true, nu_true) passes the whole pool through the systematics (with the PE's own
soft-MET noise) and draws a Poisson count for every pool event with mean weight x mu (signal) or
weight x process scale (backgrounds; the scales are inside the systematics). A sum of Poisson
counts is Poisson, so every histogram of the counts has exactly the PE's distribution.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels.pseudo_experiments import poisson_counts
from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe.systematics import apply_systematics


class PseudoExperiment(NamedTuple):
    """Shapes: pri (n, 16) the pool after systematics; counts (n,) float32 events drawn per pool event."""

    pri: jax.Array
    counts: jax.Array


def max_event_rate(pool: schema.EventPool, mu_max: float) -> float:
    """A static bound of any pool event's Poisson mean over the challenge's prior ranges."""
    weight_scale = max(float(mu_max), 2.0 * 1.01)  # diboson_scale <= 2, bkg_scale <= 1.01
    return float(np.max(np.asarray(pool.weights))) * weight_scale


def draw_pseudo_experiment(key: jax.Array, pool: schema.EventPool, mu_true: jax.Array, nu_true: jax.Array,
                           max_rate: float) -> PseudoExperiment:
    """One PE: systematics on the pool, then a Poisson count per event (zero for failing events).

    ``max_rate`` is a static bound of the per-event means (``max_event_rate``).
    """
    poisson_key, noise_key = jax.random.split(key)
    noise = jax.random.normal(noise_key, (pool.pri.shape[0], 2), jnp.float32)
    pri, weights, passed = apply_systematics(pool.pri, pool.weights, pool.process, nu_true, noise)
    rate = jnp.where(passed, weights, 0.0) * jnp.where(pool.process == schema.SIGNAL, mu_true, 1.0)
    return PseudoExperiment(pri, poisson_counts(poisson_key, rate, max_rate))


def pe_key(root: jax.Array, index: jax.Array) -> jax.Array:
    """The key of PE number ``index``: independent of batch size, chunking and device count."""
    return jax.random.fold_in(root, index)
