"""Binary-classification metrics as jitted kernels: ROC, AUC, background rejection, accuracies.

Conventions of the jet-tagging literature (and of scikit-learn's ``roc_curve`` / ``roc_auc_score``):
the signal is label 1 and a higher score means more signal-like; the ROC runs over every distinct
score threshold, so tied scores move together (a tie is one step of the curve, and the trapezoid
rule gives it half credit, as the Mann–Whitney statistic does). The background rejection at a
signal efficiency εS is ``1 / εB`` with εB linearly interpolated on the ROC at ``tpr = εS``
(``1 / np.interp(εS, tpr, fpr)``). Optional per-sample weights count as frequencies.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Roc(NamedTuple):
    """ROC points (N + 1,), starting at (0, 0): false- and true-positive rates, and the threshold of
    each point (+inf at the origin). Points inside a run of tied scores repeat the run's end point."""

    fpr: jax.Array
    tpr: jax.Array
    threshold: jax.Array


@jax.jit
def roc(scores: jax.Array, labels: jax.Array, weights: jax.Array | None = None) -> Roc:
    """The ROC of ``scores`` (N,) for ``labels`` (N,) in {0, 1}, optionally weighted (N,)."""
    scores = jnp.asarray(scores, jnp.float32)
    labels = jnp.asarray(labels).astype(jnp.float32)
    weights = jnp.ones_like(scores) if weights is None else jnp.asarray(weights, jnp.float32)
    order = jnp.argsort(-scores, stable=True)
    s, y, w = scores[order], labels[order], weights[order]
    tp, fp = jnp.cumsum(w * y), jnp.cumsum(w * (1.0 - y))
    n = s.shape[0]
    run_end = jnp.append(s[1:] != s[:-1], True)  # the last sample of each run of equal scores
    index = jnp.where(run_end, jnp.arange(n), n)
    fill = jax.lax.cummin(index, reverse=True)  # each position -> the end of its run
    tpr = tp[fill] / jnp.maximum(tp[-1], 1e-30)
    fpr = fp[fill] / jnp.maximum(fp[-1], 1e-30)
    zero = jnp.zeros(1, jnp.float32)
    return Roc(jnp.concatenate([zero, fpr]), jnp.concatenate([zero, tpr]), jnp.concatenate([jnp.full(1, jnp.inf), s]))


def auc(curve: Roc) -> jax.Array:
    """Area under the ROC by the trapezoid rule (equals ``roc_auc_score``, ties counted half)."""
    return jnp.sum(jnp.diff(curve.fpr) * 0.5 * (curve.tpr[1:] + curve.tpr[:-1]))


def rejection(curve: Roc, signal_efficiency: float) -> jax.Array:
    """Background rejection ``1 / εB`` at ``tpr = signal_efficiency`` (εB interpolated on the ROC)."""
    background_efficiency = jnp.interp(signal_efficiency, curve.tpr, curve.fpr)
    return 1.0 / background_efficiency


@jax.jit
def metrics(scores: jax.Array, labels: jax.Array, weights: jax.Array | None = None) -> dict[str, jax.Array]:
    """Accuracy (score > 0.5 is signal), signal and background accuracy, AUC, and the background
    rejection at signal efficiencies 0.5 and 0.3, from (N,) scores and {0, 1} labels."""
    labels = jnp.asarray(labels).astype(jnp.float32)
    weights = jnp.ones_like(labels) if weights is None else jnp.asarray(weights, jnp.float32)
    correct = ((jnp.asarray(scores) > 0.5).astype(jnp.float32) == labels).astype(jnp.float32)
    curve = roc(scores, labels, weights)
    signal, background = weights * labels, weights * (1.0 - labels)
    return {
        "accuracy": jnp.sum(weights * correct) / jnp.sum(weights),
        "signal_accuracy": jnp.sum(signal * correct) / jnp.sum(signal),
        "background_accuracy": jnp.sum(background * correct) / jnp.sum(background),
        "auc": auc(curve),
        "rejection_at_50": rejection(curve, 0.5),
        "rejection_at_30": rejection(curve, 0.3),
    }


def bounded(values: dict[str, jax.Array], labels: jax.Array) -> tuple[dict[str, float], dict[str, bool]]:
    """``metrics``' values as floats, each infinite rejection (no background passes at that signal efficiency)
    replaced by the number of background samples, which it is only known to exceed; and which were replaced."""
    n_background = float(max(1, int(jnp.sum(jnp.asarray(labels) == 0))))
    out = {name: float(v) for name, v in values.items()}
    flags = {name: not math.isfinite(v) for name, v in out.items() if name.startswith("rejection")}
    return {name: n_background if flags.get(name) else v for name, v in out.items()}, flags


def bootstrap(
    scores: jax.Array, labels: jax.Array, key: jax.Array, n_boot: int = 200
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """``metrics`` and their bootstrap standard errors: ``n_boot`` resamples of the N samples with
    replacement (as Poisson-free multinomial counts used as weights), one vmapped program."""
    n = jnp.asarray(scores).shape[0]

    def one(k):
        counts = jnp.zeros(n, jnp.float32).at[jax.random.randint(k, (n,), 0, n)].add(1.0)
        return metrics(scores, labels, counts)

    replicas = jax.jit(jax.vmap(one))(jax.random.split(key, n_boot))
    return metrics(scores, labels), {name: jnp.std(v, ddof=1) for name, v in replicas.items()}


def binned_metrics(
    scores: jax.Array, labels: jax.Array, bins: jax.Array, n_bins: int, key: jax.Array, n_boot: int = 200
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """``metrics`` of the samples in each bin (bins (N,) int, -1 = in none) and their bootstrap standard errors,
    one vmapped program for every bin and resample (no recompile per bin size). Values (n_bins,) equal ``metrics``
    on each bin's samples; errors come from the Poisson bootstrap (weights ~ Poisson(1) per sample), which for
    bins of n >~ 20 matches the multinomial resampling of :func:`bootstrap`. An empty bin gives NaN."""
    members = (jnp.asarray(bins)[None, :] == jnp.arange(n_bins)[:, None]).astype(jnp.float32)  # (n_bins, N)
    y = jnp.asarray(labels).astype(jnp.float32)

    def one_bin(w):  # NaN where a bin (or a resample of it) lacks signal or background
        both = (w @ y > 0) & (w @ (1.0 - y) > 0)
        return {k: jnp.where(both, v, jnp.nan) for k, v in jax.vmap(lambda wb: metrics(scores, labels, wb))(w).items()}

    values = one_bin(members)

    def replica(k):
        return one_bin(members * jax.random.poisson(k, 1.0, members.shape[1:]).astype(jnp.float32)[None, :])

    replicas = jax.jit(jax.vmap(replica))(jax.random.split(key, n_boot))
    return values, {name: jnp.nanstd(v, axis=0, ddof=1) for name, v in replicas.items()}
