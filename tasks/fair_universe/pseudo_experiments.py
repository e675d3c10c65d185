"""Pseudo-experiments (PEs) as integer counts over a fixed event pool, never materialised rows.

One PE for (mu_true, nu_true) passes the whole pool through the systematics and draws a Poisson count for every pool event with mean weight x mu (signal) or
weight x process scale (backgrounds; the scales are inside the systematics). A sum of Poisson
counts is Poisson, so every histogram of the counts has exactly the PE's distribution.

The soft-MET term is soft_met x a fixed standard-normal direction per pool event (``met_noise``,
drawn once per pool), so it acts on each event deterministically, like tes and jes, and the
templates can follow it exactly. The challenge redraws that noise for every PE; over a fixed pool
this adds event migrations between score bins that no binned likelihood models (measured: pull
width 1.8 at soft_met > 2 GeV with per-PE noise), so jaxbench treats the noise as an event property.
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


def pool_met_noise(key: jax.Array, pool: schema.EventPool) -> jax.Array:
    """The fixed soft-MET direction (n, 2) of every pool event: standard normals."""
    return jax.random.normal(key, (pool.pri.shape[0], 2), jnp.float32)


def draw_pseudo_experiment(key: jax.Array, pool: schema.EventPool, met_noise: jax.Array, mu_true: jax.Array,
                           nu_true: jax.Array, max_rate: float) -> PseudoExperiment:
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
