"""The reference estimator of ``fair_universe-v0``: classifier, templates and one pseudo-experiment.

Per PE: Poisson counts over the whole pool, then block by block of events (``lax.map``, so a
block's intermediates stay in cache) the features after systematics, the classifier and the soft
histogram; blocks whose events all fail the cuts are skipped (the prepared pool is sorted by had
pT). Then a profiled and a statistical-only fit of the histogram.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels.likelihood import make_profile_fit
from jaxbench.kernels.segments import weighted_column_sums

from . import schema
from .classifier import TrainHistory, classifier_score, train_classifier
from .config import ClassifierConfig
from .pseudo_experiments import PreparedPool, block_passes, draw_counts, had_pt_order, prepare_pool
from .systematics import apply_nominal, shifted_feature_columns
from .templates import (
    ALPHA_CENTER,
    ALPHA_SIGMA,
    TemplateModel,
    build_templates,
    event_features,
    expected_counts,
    make_binned_yields,
    signal_quantile_edges,
    soft_histogram,
)

# A large soft_met (3-5 GeV, ~1.5 sigma in ln soft_met) is far from the start of the fit in a very
# non-linear direction: 12 Newton steps left half of those fits unconverged, 40 converge all.
NEWTON_STEPS, CROSSING_STEPS = 40, 16


class PEOutputs(NamedTuple):
    """Per PE: the score histogram (B,), the events drawn, and both fits' mu_hat, p16, p84, converged."""

    hist: jax.Array
    n_events: jax.Array
    profiled_mu_hat: jax.Array
    profiled_p16: jax.Array
    profiled_p84: jax.Array
    profiled_converged: jax.Array
    stat_only_mu_hat: jax.Array
    stat_only_p16: jax.Array
    stat_only_p84: jax.Array
    stat_only_converged: jax.Array


class Params(NamedTuple):
    """The trained classifier, its history and the templates of its score."""

    classifier: dict
    history: TrainHistory
    templates: TemplateModel


@dataclasses.dataclass(frozen=True)
class PEShared:
    """What every PE reads: the prepared pool, the templates, the classifier; ``max_rate`` is a
    static bound of the per-event Poisson means (``max_event_rate``), so it is jit metadata."""

    prepared: PreparedPool
    templates: TemplateModel
    classifier: dict
    max_rate: float


jax.tree_util.register_dataclass(
    PEShared, data_fields=["prepared", "templates", "classifier"], meta_fields=["max_rate"]
)


def train_on_pool(
    key: jax.Array, train: schema.EventPool, config: ClassifierConfig, drop: Sequence[str] = ()
) -> tuple[dict, TrainHistory]:
    """The classifier trained on the events of ``train`` that pass the nominal analysis cuts, blind to
    the feature columns ``drop`` (names in ``schema.FEATURE_COLUMNS``)."""
    unknown = [name for name in drop if name not in schema.FEATURE_COLUMNS]
    if unknown:
        raise ValueError(
            f"train_on_pool: unknown feature columns {unknown}; the features are {schema.FEATURE_COLUMNS}."
        )
    train = jax.tree.map(jnp.asarray, train)  # a reloaded stage holds numpy arrays
    pri, weights, passed = apply_nominal(train.pri, train.weights, train.process)
    keep = np.asarray(passed)
    return train_classifier(
        key,
        event_features(pri)[keep],
        train.labels[keep],
        weights[keep],
        hidden=config.hidden,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        drop_columns=[schema.FEATURE_COLUMNS.index(name) for name in drop],
    )


def fit_templates(classifier: dict, pool: schema.EventPool, met_noise: jax.Array, n_bins: int) -> TemplateModel:
    """Score bins of equal expected signal and the nuisance-aware templates of a trained classifier."""
    score_fn = classifier_score
    pri, weights, passed = apply_nominal(pool.pri, pool.weights, pool.process)
    score = jax.jit(score_fn)(classifier, event_features(pri))
    edges = signal_quantile_edges(score, jnp.where(passed & (pool.process == schema.SIGNAL), weights, 0.0), n_bins)
    return build_templates(make_binned_yields(score_fn, n_bins), classifier, pool, edges, met_noise)


def prepare_shared(
    classifier: dict, templates: TemplateModel, pool: schema.EventPool, met_noise: jax.Array, max_rate: float
) -> PEShared:
    """The pool's invariants computed once, its events sorted by had pT (each PE skips failing blocks)."""
    prepared = jax.jit(prepare_pool)(pool, met_noise, had_pt_order(pool))
    return PEShared(prepared, templates, classifier, float(max_rate))


def make_pe_fn() -> Callable[[PEShared, Any, jax.Array], PEOutputs]:
    """``pe(shared, conditions, keys) -> PEOutputs``: one PE per item, one after another per device.

    Measured on CPU, a ``vmap`` over PEs was 1.7x slower than ``lax.map`` (it batches every
    pool-sized intermediate); the fits stay per PE too, so their float32 rounding does not depend
    on the batch size (the device count).
    """
    score_fn = classifier_score

    def histogram(shared: PEShared, key, mu, nu):
        prepared, edges = shared.prepared, shared.templates.edges
        counts = draw_counts(key, prepared, mu, nu, shared.max_rate)

        def block_histogram(invariants, block_counts):
            columns, _ = shifted_feature_columns(invariants, nu)
            n_pri = len(schema.PRI_COLUMNS)  # two column blocks: XLA stacks and multiplies them concurrently
            features = (jnp.stack(columns[:n_pri], axis=-1), jnp.stack(columns[n_pri:], axis=-1))
            return soft_histogram(block_counts, score_fn(shared.classifier, features), edges)

        def block_or_skip(args):  # a block where every event fails the cuts draws no event
            passes, invariants, block_counts = args
            return jax.lax.cond(
                passes, block_histogram, lambda *_: jnp.zeros(edges.shape[0] - 1, jnp.float32), invariants, block_counts
            )

        per_block = jax.lax.map(block_or_skip, (block_passes(prepared, nu), prepared.invariants, counts))
        return weighted_column_sums(jnp.ones_like(per_block[:, 0]), per_block), jnp.sum(counts)

    def one(shared: PEShared, args) -> PEOutputs:
        key, mu, nu = args
        hist, n_events = histogram(shared, key, mu, nu)
        fits = []
        for profile in (True, False):
            fit = make_profile_fit(
                lambda m, a: expected_counts(shared.templates, m, a),
                ALPHA_CENTER,
                ALPHA_SIGMA,
                profile=profile,
                newton_steps=NEWTON_STEPS,
                crossing_steps=CROSSING_STEPS,
            )(hist)
            fits += [fit.mu_hat, fit.p16, fit.p84, fit.converged]
        return PEOutputs(hist, n_events, *fits)

    def pe(shared: PEShared, conditions, keys) -> PEOutputs:
        return jax.lax.map(lambda args: one(shared, args), (keys, conditions.mu_true, conditions.nu_true))

    return pe
