"""Binned templates of the classifier score that follow each nuisance parameter.

The expected events in score bin b are

    lambda_b(mu, alpha) = mu * S_b R_sb(alpha) + bkg_scale * sum_p k_p Y_pb R_pb(alpha),

with Y_pb the nominal yield of process p in bin b, k_p the ttbar/diboson weight scales and
R_pb = exp(sum_k a_kpb x_k + c_kpb x_k^2) the smooth response to the three shape nuisances,
x = (tes - 1, jes - 1, soft_met^2). The coefficients are least-squares fits of the log-ratio of
yields computed by passing the whole pool through the systematics on a grid of each nuisance
(the others nominal) with common random numbers, so the response is smooth. soft_met enters as
its square because added Gaussian noise changes the MET distribution through its variance.

Fit parameters ``alpha`` (6,): (tes, jes, ln soft_met, ttbar_scale, diboson_scale, bkg_scale),
Gaussian-constrained with the centres and widths of the challenge's priors (ln soft_met ~ N(0, 1)
is the prior LogNormal(0, 1) itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe.derived import derived_features
from jaxbench.tasks.fair_universe.systematics import apply_systematics

ALPHA_NAMES = ("tes", "jes", "ln_soft_met", "ttbar_scale", "diboson_scale", "bkg_scale")
ALPHA_CENTER = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0], np.float32)
ALPHA_SIGMA = np.array([0.01, 0.01, 1.0, 0.02, 0.25, 0.001], np.float32)
SOFT_MET_MAX_GEV = 6.0  # the response is fitted up to the prior's 5 GeV; beyond it is held flat

# Grids on which the shape responses are measured (values of tes, jes and soft_met in GeV).
TES_GRID = (0.96, 0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03, 1.04)
JES_GRID = TES_GRID
SOFT_MET_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)


class TemplateModel(NamedTuple):
    """Shapes: edges (B+1,) score-bin edges; nominal (P, B) expected events per process at mu = 1
    and nominal nuisances (soft_met = 0); coef (3, P, B, 2) linear/quadratic log-response
    coefficients of (tes - 1, jes - 1, soft_met^2)."""

    edges: jax.Array
    nominal: jax.Array
    coef: jax.Array


def event_features(pri: jax.Array) -> jax.Array:
    """The 28 classifier inputs (n, 28): PRI then DER columns."""
    return jnp.concatenate([pri, derived_features(pri)], axis=-1)


def score_bins(score: jax.Array, edges: jax.Array) -> jax.Array:
    """Bin index in [0, B) of each score; the outer edges are open."""
    return jnp.clip(jnp.searchsorted(edges[1:-1], score, side="right"), 0, edges.shape[0] - 2)


def signal_quantile_edges(score: jax.Array, weights: jax.Array, n_bins: int) -> jax.Array:
    """Edges (n_bins + 1,) with equal expected signal per bin; outer edges 0 and 1."""
    order = jnp.argsort(score)
    cdf = jnp.cumsum(weights[order]) / jnp.sum(weights)
    inner = jnp.interp(jnp.arange(1, n_bins) / n_bins, cdf, score[order])
    return jnp.concatenate([jnp.zeros(1), inner, jnp.ones(1)]).astype(jnp.float32)


def make_binned_yields(score_fn: Callable, n_bins: int):
    """``yields(params, pool, edges, nuisances, met_noise) -> (P, B)`` expected events, mu = 1."""

    def yields(params, pool: schema.EventPool, edges, nuisances, met_noise):
        pri, weights, passed = apply_systematics(pool.pri, pool.weights, pool.process, nuisances, met_noise)
        bins = score_bins(score_fn(params, event_features(pri)), edges)
        segment = pool.process * n_bins + bins
        total = jax.ops.segment_sum(jnp.where(passed, weights, 0.0), segment, len(schema.PROCESSES) * n_bins)
        return total.reshape(len(schema.PROCESSES), n_bins)

    return yields


def fit_log_response(x: jax.Array, yields: jax.Array, reference: jax.Array) -> jax.Array:
    """Least-squares (a, c) of log(Y(x)/Y(0)) = a x + c x^2 per bin; x (G,), yields (G, ...) -> (..., 2)."""
    floor = 1e-6 * jnp.max(reference)
    log_ratio = jnp.log((yields + floor) / (reference[None] + floor))
    design = jnp.stack([x, x * x], axis=-1)  # (G, 2)
    solution, *_ = jnp.linalg.lstsq(design, log_ratio.reshape(x.shape[0], -1))
    return jnp.moveaxis(solution.reshape((2,) + yields.shape[1:]), 0, -1)


def build_templates(yields_fn, params, pool: schema.EventPool, edges, met_noise) -> TemplateModel:
    """Measures the nominal yields and the three shape responses on their grids."""
    nominal_nu = jnp.asarray(schema.NOMINAL_NUISANCES)
    batched = jax.jit(jax.vmap(yields_fn, in_axes=(None, None, None, 0, None)))

    def grid_yields(index: int, values) -> jax.Array:
        nus = jnp.tile(nominal_nu[None, :], (len(values), 1)).at[:, index].set(jnp.asarray(values, jnp.float32))
        return batched(params, pool, edges, nus, met_noise)

    nominal = jax.jit(yields_fn)(params, pool, edges, nominal_nu, met_noise)
    coefs = []
    for index, grid, transform in (
        (0, TES_GRID, lambda v: v - 1.0),
        (1, JES_GRID, lambda v: v - 1.0),
        (2, SOFT_MET_GRID, lambda v: v * v),
    ):
        x = transform(jnp.asarray(grid, jnp.float32))
        coefs.append(fit_log_response(x, grid_yields(index, grid), nominal))
    return TemplateModel(edges, nominal, jnp.stack(coefs))


def shape_variables(alpha: jax.Array) -> jax.Array:
    """(tes - 1, jes - 1, soft_met^2) from the fit parameters alpha (6,)."""
    soft_met = jnp.minimum(jnp.exp(alpha[2]), SOFT_MET_MAX_GEV)
    return jnp.stack([alpha[0] - 1.0, alpha[1] - 1.0, soft_met * soft_met])


def process_yields(model: TemplateModel, mu: jax.Array, alpha: jax.Array) -> jax.Array:
    """Expected events (P, B) per process and bin at signal strength mu and parameters alpha."""
    x = shape_variables(alpha)
    log_response = jnp.einsum("k,kpb->pb", x, model.coef[..., 0]) + jnp.einsum("k,kpb->pb", x * x, model.coef[..., 1])
    scale = jnp.stack([mu, alpha[5], alpha[5] * alpha[3], alpha[5] * alpha[4]])
    return scale[:, None] * model.nominal * jnp.exp(log_response)


def expected_counts(model: TemplateModel, mu: jax.Array, alpha: jax.Array) -> jax.Array:
    """Expected events per bin (B,): lambda_b(mu, alpha)."""
    return jnp.sum(process_yields(model, mu, alpha), axis=0)
