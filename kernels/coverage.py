"""Coverage score of 68.27% intervals on the signal strength mu (FAIR Universe HiggsML challenge).

For N pseudo-experiments (PEs) with true value ``mu_true_i`` and submitted interval
``[p16_i, p84_i]`` (all in units of mu, the signal strength)::

    width     w = mean_i |p84_i - p16_i|
    coverage  c = mean_i 1[p16_i <= mu_true_i <= p84_i]        (both ends inclusive)
    sigma68     = sqrt(target * (1 - target) / N)
    band        [lo, hi] = target -/+ band_sigmas * sigma68
    penalty   f = 1                               if lo <= c <= hi
                  1 + |(c - lo) / sigma68| ** 4   if c < lo   (under-coverage costs more)
                  1 + |(c - hi) / sigma68| ** 3   if c > hi
    score     s = -ln((w + eps) * f)              (higher is better)

Two conventions, passed as keyword arguments (``coverage_score(..., **PROPOSAL._asdict())``):

* ``OFFICIAL`` — target 0.6827, eps 1e-3, band 2 sigma68: the challenge's scoring program
  (github.com/FAIR-Universe/HEP-Challenge, ``scoring_program/score.py``, ``Quantiles_Score``).
  It is the default of every function here.
* ``PROPOSAL`` — target 0.68, eps 1e-2, band 2 sigma68: the jaxbench proposal's variant (the
  challenge's evaluation page also writes the centre as 0.68; its program uses 0.6827).

Everything is pure and jit-able (no Python branching on values; ``num_groups`` and
``num_resamples`` are static), computes in the inputs' float dtype (float32 unless x64 is on),
and takes an optional ``mask`` (N,) bool so padded PEs leave shapes static: then N = mask.sum().
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp


class ScoreConvention(NamedTuple):
    """Parameters of the quantiles score: coverage target, width offset eps (units of mu), band
    half-width in sigma68."""

    target: float
    eps: float
    band_sigmas: float


OFFICIAL = ScoreConvention(target=0.6827, eps=1e-3, band_sigmas=2.0)
PROPOSAL = ScoreConvention(target=0.68, eps=1e-2, band_sigmas=2.0)


class CoverageScore(NamedTuple):
    """Quantiles score of a set of intervals; each field a scalar (or one value per group/resample).

    score: -ln((width + eps) * penalty), higher is better. width: mean |p84 - p16| (units of mu).
    coverage: fraction of PEs with p16 <= mu_true <= p84. penalty: f(coverage) >= 1.
    n: number of PEs counted (float).
    """

    score: jax.Array
    width: jax.Array
    coverage: jax.Array
    penalty: jax.Array
    n: jax.Array


def coverage_penalty(
    coverage: jax.Array, n: jax.Array, *, target: float = OFFICIAL.target, band_sigmas: float = OFFICIAL.band_sigmas
) -> jax.Array:
    """Penalty f(coverage) >= 1 for a coverage measured on n PEs; 1 inside target +/- band."""
    sigma68 = jnp.sqrt(target * (1.0 - target) / n)
    lo = target - band_sigmas * sigma68
    hi = target + band_sigmas * sigma68
    below = jnp.abs((coverage - lo) / sigma68) ** 4
    above = jnp.abs((coverage - hi) / sigma68) ** 3
    return 1.0 + jnp.where(coverage < lo, below, jnp.where(coverage > hi, above, 0.0))


def _prepare(mu_true, p16, p84, mask):
    """Arrays as (N,) in one float dtype; mu_true may be a scalar; mask defaults to all True."""
    p16, p84 = jnp.asarray(p16), jnp.asarray(p84)
    chex.assert_rank([p16, p84], 1)
    chex.assert_equal_shape([p16, p84])
    dtype = jnp.result_type(p16, p84, 1.0)
    mu_true = jnp.broadcast_to(jnp.asarray(mu_true, dtype), p16.shape)
    mask = jnp.ones(p16.shape, bool) if mask is None else jnp.asarray(mask, bool)
    chex.assert_equal_shape([p16, mask])
    return mu_true, p16.astype(dtype), p84.astype(dtype), mask


def _per_pe(mu_true, p16, p84, mask):
    """Per-PE width and inside flag (float), zeroed on padded rows so NaN padding cannot leak."""
    inside = (p16 <= mu_true) & (mu_true <= p84)
    width = jnp.where(mask, jnp.abs(p84 - p16), 0.0)
    return width, jnp.where(mask, inside, False).astype(p16.dtype), mask.astype(p16.dtype)


def _assemble(width_sum, inside_sum, n, target, eps, band_sigmas) -> CoverageScore:
    width = width_sum / n
    coverage = inside_sum / n
    penalty = coverage_penalty(coverage, n, target=target, band_sigmas=band_sigmas)
    score = -jnp.log((width + eps) * penalty)
    return CoverageScore(score=score, width=width, coverage=coverage, penalty=penalty, n=n)


def coverage_score(
    mu_true: jax.Array,
    p16: jax.Array,
    p84: jax.Array,
    *,
    mask: jax.Array | None = None,
    target: float = OFFICIAL.target,
    eps: float = OFFICIAL.eps,
    band_sigmas: float = OFFICIAL.band_sigmas,
) -> CoverageScore:
    """Quantiles score of N intervals, as the official scoring program computes it.

    Shapes: mu_true () or (N,); p16, p84 (N,) in units of mu; mask (N,) bool, True = real PE.
    """
    mu_true, p16, p84, mask = _prepare(mu_true, p16, p84, mask)
    width, inside, valid = _per_pe(mu_true, p16, p84, mask)
    return _assemble(width.sum(), inside.sum(), valid.sum(), target, eps, band_sigmas)


def per_group_coverage(
    mu_true: jax.Array,
    p16: jax.Array,
    p84: jax.Array,
    group_ids: jax.Array,
    num_groups: int,
    *,
    mask: jax.Array | None = None,
    target: float = OFFICIAL.target,
    eps: float = OFFICIAL.eps,
    band_sigmas: float = OFFICIAL.band_sigmas,
) -> CoverageScore:
    """Quantiles score of each group of PEs (e.g. one group per mu_true value, the official "sets").

    Shapes: as ``coverage_score`` plus group_ids (N,) int in [0, num_groups) (static count);
    every field of the result is (num_groups,), ``n`` holding the PE count of each group.
    Empty groups give NaN width, coverage, penalty and score.
    """
    mu_true, p16, p84, mask = _prepare(mu_true, p16, p84, mask)
    width, inside, valid = _per_pe(mu_true, p16, p84, mask)
    group_sum = functools.partial(jax.ops.segment_sum, segment_ids=group_ids, num_segments=num_groups)
    return _assemble(group_sum(width), group_sum(inside), group_sum(valid), target, eps, band_sigmas)


def bootstrap_coverage_score(
    key: jax.Array,
    mu_true: jax.Array,
    p16: jax.Array,
    p84: jax.Array,
    num_resamples: int = 1000,
    *,
    mask: jax.Array | None = None,
    target: float = OFFICIAL.target,
    eps: float = OFFICIAL.eps,
    band_sigmas: float = OFFICIAL.band_sigmas,
) -> CoverageScore:
    """Quantiles scores of ``num_resamples`` bootstrap resamples of the PEs (with replacement).

    Every field of the result is (num_resamples,); report e.g. ``samples.score.std(ddof=1)`` as
    the standard error of the score. Resample i uses ``fold_in(key, i)``, so the first k samples
    do not depend on ``num_resamples`` (static). Each resample draws N = mask.sum() real PEs.
    """
    mu_true, p16, p84, mask = _prepare(mu_true, p16, p84, mask)
    size = p16.shape[0]
    n_valid = mask.sum()
    valid_rows = jnp.nonzero(mask, size=size)[0]  # real PEs first, static shape
    keep = jnp.arange(size) < n_valid

    def one_resample(i):
        draw = jax.random.randint(jax.random.fold_in(key, i), (size,), 0, n_valid)
        rows = valid_rows[draw]
        return coverage_score(
            mu_true[rows], p16[rows], p84[rows], mask=keep, target=target, eps=eps, band_sigmas=band_sigmas
        )

    return jax.vmap(one_resample)(jnp.arange(num_resamples))


def codabench_scores(
    mu_true: jax.Array, mu_hat: jax.Array, p16: jax.Array, p84: jax.Array, *, delta_mu_hat: jax.Array | None = None
) -> dict[str, float]:
    """Scores in the challenge's Codabench ``scores.json`` layout, as plain Python floats.

    Keys (the official ones, ``scoring_program/score.py``): ``quantiles_score``, ``interval``
    (mean width), ``coverage``, ``rmse``, ``mae``; plus ``n_pseudo_experiments`` (ours; the official
    file's ``ingestion_duration`` has no meaning here). Per PE with d = mu_hat - mu_true and
    delta = delta_mu_hat (default (p84 - p16) / 2, the half-width the sample submissions report):
    rmse_i = sqrt(d**2 + (d**2 - delta**2)**2), mae_i = |d| + ||d| - delta|; both are averaged over
    PEs. The official program averages per set of PEs (one mu_true each) and then over sets, which
    is the same number when the sets are equally large, as in the challenge.
    Shapes: mu_true () or (N,); mu_hat, p16, p84, delta_mu_hat (N,) in units of mu.
    """
    mu_true, p16, p84, _ = _prepare(mu_true, p16, p84, None)
    mu_hat = jnp.asarray(mu_hat, p16.dtype)
    chex.assert_equal_shape([mu_hat, p16])
    delta = (p84 - p16) / 2 if delta_mu_hat is None else jnp.asarray(delta_mu_hat, p16.dtype)
    chex.assert_equal_shape([delta, p16])
    d = mu_hat - mu_true
    rmse = jnp.sqrt(d**2 + (d**2 - delta**2) ** 2).mean()
    mae = (jnp.abs(d) + jnp.abs(jnp.abs(d) - delta)).mean()
    quantiles = coverage_score(mu_true, p16, p84)
    return {
        "quantiles_score": float(quantiles.score),
        "interval": float(quantiles.width),
        "coverage": float(quantiles.coverage),
        "rmse": float(rmse),
        "mae": float(mae),
        "n_pseudo_experiments": int(quantiles.n),
    }
