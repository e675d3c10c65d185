"""Binned templates of the classifier score that follow each nuisance parameter.

The expected events in score bin b are

    lambda_b(mu, alpha) = mu * S_b R_sb(alpha) + bkg_scale * sum_p k_p Y_pb R_pb(alpha),

with Y_pb the nominal yield of process p in bin b, k_p the ttbar/diboson weight scales and
R_pb = exp(sum_k sum_d c_kpbd x_k^d), d = 1..3, the smooth response to the three shape nuisances,
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

from jaxbench.kernels.segments import weighted_column_sums

from . import schema
from .derived import derived_features
from .systematics import apply_systematics

ALPHA_CENTER = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0], np.float32)
ALPHA_SIGMA = np.array([0.01, 0.01, 1.0, 0.02, 0.25, 0.001], np.float32)
SOFT_MET_MAX_GEV = 6.0  # the response is fitted up to the prior's 5 GeV; beyond it is held flat
BIN_SMOOTHING = 0.25  # width of the soft bin edges, in bin widths (see bin_fractions)

# Grids on which the shape responses are measured (values of tes, jes and soft_met in GeV).
TES_GRID = (0.96, 0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03, 1.04)
JES_GRID = TES_GRID
SOFT_MET_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
# Degree of the log-response polynomial; cubic follows soft_met up to 5 GeV where quadratic did not.
RESPONSE_DEGREE = 3


class TemplateModel(NamedTuple):
    """Shapes: edges (B+1,) score-bin edges; nominal (P, B) expected events per process at mu = 1
    and nominal nuisances (soft_met = 0); coef (3, P, B, RESPONSE_DEGREE) polynomial log-response
    coefficients (powers 1..RESPONSE_DEGREE) of (tes - 1, jes - 1, soft_met^2)."""

    edges: jax.Array
    nominal: jax.Array
    coef: jax.Array


def event_features(pri: jax.Array) -> jax.Array:
    """The 28 classifier inputs (n, 28): PRI then DER columns."""
    return jnp.concatenate([pri, derived_features(pri)], axis=-1)


def bin_fraction_columns(score: jax.Array, edges: jax.Array, smoothing: float = BIN_SMOOTHING) -> list[jax.Array]:
    """Soft assignment of each score to the bins, one (n,) array per bin; they sum to 1 per event.

    The score is mapped to u in [0, 1] by the piecewise-linear map that sends the edges to
    equally spaced points, and an event belongs to bin b with weight
    sigmoid((u - b/B) / s) - sigmoid((u - (b+1)/B) / s), s = smoothing / B (outer edges open).
    A pool event then slides between bins as the nuisances move its score, instead of jumping:
    with ~5 expected events per pool event, hard edges make the pool's histogram a step
    function of tes/jes/soft_met that no smooth template follows (measured misfits of 1-2.5
    Poisson sigma per bin); with soft edges the steps are smoothed away. The bins' variance is
    then a little below their mean, so the Poisson likelihood is slightly conservative.

    Computed with one exp per event: exp(-(u - b/B) / s) = exp(-(u - 1/2) / s) exp((b/B - 1/2) / s),
    the second factor a constant per edge (with the per-bin sums of ``soft_histogram``, measured 3x
    faster than a sigmoid per edge in an (n, B) array, and closer to a float64 evaluation).
    """
    n_bins = edges.shape[0] - 1
    widths = jnp.maximum(edges[1:] - edges[:-1], jnp.finfo(jnp.float32).tiny)
    # u = (number of edges passed + the fraction of the current bin) / B, the map of jnp.interp.
    u = sum(jnp.clip((score - edges[b]) / widths[b], 0.0, 1.0) for b in range(n_bins)) / n_bins
    steepness = n_bins / smoothing  # 1 / s
    if steepness / 2 < 80:  # exp(+-steepness / 2) stays finite in float32
        t = jnp.exp(-(u - 0.5) * steepness)
        above = [1.0 / (1.0 + t * np.float32(np.exp((b / n_bins - 0.5) * steepness))) for b in range(1, n_bins)]
    else:
        above = [jax.nn.sigmoid((u - b / n_bins) * steepness) for b in range(1, n_bins)]
    above = [jnp.ones_like(u)] + above + [jnp.zeros_like(u)]
    return [above[b] - above[b + 1] for b in range(n_bins)]


def bin_fractions(score: jax.Array, edges: jax.Array, smoothing: float = BIN_SMOOTHING) -> jax.Array:
    """Soft assignment (n, B) of each score to the bins (``bin_fraction_columns``); rows sum to 1."""
    return jnp.stack(bin_fraction_columns(score, edges, smoothing), axis=-1)


def soft_histogram(counts: jax.Array, score: jax.Array, edges: jax.Array, block: int = 1024) -> jax.Array:
    """sum_i counts_i * fraction_ib (B,): the soft-binned histogram of events with these scores.

    Summed block by block (``kernels.segments``' accuracy); n a multiple of ``block`` avoids a
    padding copy. Shapes: counts (n,), score (n,) -> (B,).
    """
    n = counts.shape[0]
    pad = -(-n // block) * block - n
    if pad:
        counts, score = jnp.pad(counts, (0, pad)), jnp.pad(score, (0, pad))
    blocks = counts.reshape(-1, block)
    block_sums = [jnp.sum(blocks * column.reshape(-1, block), axis=1) for column in bin_fraction_columns(score, edges)]
    block_sums = jnp.stack(block_sums, axis=-1)  # (n / block, B)
    return weighted_column_sums(jnp.ones_like(block_sums[:, 0]), block_sums, block)


def signal_quantile_edges(score: jax.Array, weights: jax.Array, n_bins: int) -> jax.Array:
    """Edges (n_bins + 1,) with equal expected signal per bin; outer edges 0 and 1."""
    order = jnp.argsort(score)
    cdf = jnp.cumsum(weights[order]) / jnp.sum(weights)
    inner = jnp.interp(jnp.arange(1, n_bins) / n_bins, cdf, score[order])
    return jnp.concatenate([jnp.zeros(1), inner, jnp.ones(1)]).astype(jnp.float32)


def make_binned_yields(score_fn: Callable, n_bins: int) -> Callable[..., jax.Array]:
    """``yields(params, pool, edges, nuisances, met_noise) -> (P, B)`` expected events, mu = 1."""

    def yields(params, pool: schema.EventPool, edges, nuisances, met_noise):
        pri, weights, passed = apply_systematics(pool.pri, pool.weights, pool.process, nuisances, met_noise)
        fractions = bin_fractions(score_fn(params, event_features(pri)), edges)  # (n, B)
        per_process = pool.process[:, None] == jnp.arange(len(schema.PROCESSES))[None, :]  # (n, P)
        joint = (per_process[:, :, None] * fractions[:, None, :]).reshape(fractions.shape[0], -1)
        total = weighted_column_sums(jnp.where(passed, weights, 0.0), joint)
        return total.reshape(len(schema.PROCESSES), n_bins)

    return yields


def fit_log_response(x: jax.Array, yields: jax.Array, reference: jax.Array) -> jax.Array:
    """Least-squares c_d of log(Y(x)/Y(0)) = sum_d c_d x^d (d = 1..RESPONSE_DEGREE) per bin.

    Shapes: x (G,), yields (G, ...), reference (...) -> (..., RESPONSE_DEGREE).
    """
    floor = 1e-6 * jnp.max(reference)
    log_ratio = jnp.log((yields + floor) / (reference[None] + floor))
    design = powers(x)  # (G, D)
    solution, *_ = jnp.linalg.lstsq(design, log_ratio.reshape(x.shape[0], -1))
    return jnp.moveaxis(solution.reshape((RESPONSE_DEGREE,) + yields.shape[1:]), 0, -1)


def powers(x: jax.Array) -> jax.Array:
    """x, x^2, ..., x^RESPONSE_DEGREE stacked on a new last axis."""
    return jnp.stack([x**d for d in range(1, RESPONSE_DEGREE + 1)], axis=-1)


def build_templates(
    yields_fn: Callable[..., jax.Array], params: dict, pool: schema.EventPool, edges: jax.Array, met_noise: jax.Array
) -> TemplateModel:
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
    log_response = jnp.einsum("kd,kpbd->pb", powers(x), model.coef)
    scale = jnp.stack([mu, alpha[5], alpha[5] * alpha[3], alpha[5] * alpha[4]])
    return scale[:, None] * model.nominal * jnp.exp(log_response)


def expected_counts(model: TemplateModel, mu: jax.Array, alpha: jax.Array) -> jax.Array:
    """Expected events per bin (B,): lambda_b(mu, alpha)."""
    return jnp.sum(process_yields(model, mu, alpha), axis=0)
