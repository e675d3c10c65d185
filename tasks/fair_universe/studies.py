"""``fair_universe-v0``'s own studies (breakdown, correlation, stability are the generic ones):
``sample_efficiency`` retrains the classifier on nested subsets and scores the same PEs;
``feature_ood`` pushes each nuisance to k prior sigmas (trusted range: coverage >= the minimum);
``rotation_scan`` turns the PE pool about the beam axis (invariant physics, absolute azimuths)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.errors import ConfigError
from jaxbench.studies import StudyResult, analyses, catalogue
from jaxbench.studies.context import Study, StudyContext

from . import schema
from .checks import training_split
from .classifier import VALID_FRACTION
from .estimator import fit_templates, train_on_pool
from .pseudo_experiments import max_event_rate
from .scoring import interval_metrics
from .systematics import apply_nominal, nuisance_at, rotate_azimuth


def _conditions(ctx: StudyContext, key: jax.Array):
    config = ctx.config
    analysis = dataclasses.replace(config.analysis, n_pe_per_mu=config.studies.study_pe_per_mu)
    return ctx.task.conditions(key, ctx.data, dataclasses.replace(config, analysis=analysis))


def _stage(ctx: StudyContext):
    return lambda name, fn: ctx.stage(f"{ctx.name}.{name}", fn)


def _sample_efficiency(ctx: StudyContext) -> StudyResult:
    config, train = ctx.config, ctx.data.train
    passed_idx = np.flatnonzero(np.asarray(apply_nominal(train.pri, train.weights, train.process)[2]))
    items_key, eval_key, train_key = jax.random.split(ctx.key, 3)
    items = _conditions(ctx, items_key)

    def train_eval(key, idx):
        classifier, history = train_on_pool(key, jax.tree.map(lambda a: a[passed_idx[idx]], train), config.classifier)
        templates = fit_templates(classifier, ctx.data.pool, ctx.data.met_noise, config.analysis.n_bins)
        out = ctx.evaluate(
            items, eval_key, shared=dataclasses.replace(ctx.shared, classifier=classifier, templates=templates)
        )
        loss = float(np.asarray(history.valid_loss)[-1])
        return {**interval_metrics(out, items.mu_true), "classifier_val_loss": loss}

    sizes = sorted({max(200, int(round(f * passed_idx.size))) for f in config.studies.efficiency_fractions})
    batch = config.classifier.batch_size
    if training_split(sizes[0])[0] < batch:
        needed = (batch / (1 - VALID_FRACTION) + 1) / passed_idx.size
        raise ConfigError(
            f"studies.efficiency_fractions={config.studies.efficiency_fractions}: the smallest subset "
            f"({sizes[0]} of {passed_idx.size} events) trains on fewer than classifier.batch_size={batch} events; "
            f"pass --set studies.efficiency_fractions=F,1 with F >= {needed:.3g}, or a smaller classifier.batch_size."
        )
    result = analyses.sample_efficiency(
        train_eval, passed_idx.size, sizes, range(config.studies.efficiency_seeds), train_key, stage=_stage(ctx)
    )
    return StudyResult(result.study, result.rows, {**result.summary, "n_pseudo_experiments": int(items.mu_true.size)})


def _feature_ood(ctx: StudyContext) -> StudyResult:
    config = ctx.config
    sigmas = [float(s) for s in config.studies.ood_sigmas]
    names = [n for n in schema.NUISANCES if n in config.analysis.systematics]
    items_key, eval_key = jax.random.split(ctx.key)
    base = _conditions(ctx, items_key)
    n_base = base.mu_true.shape[0]
    largest = max([nuisance_at(n, s) for n in ("ttbar_scale", "diboson_scale", "bkg_scale") for s in sigmas] + [1.0])
    rate = max_event_rate(
        ctx.data.pool, max(max(config.analysis.mu_values), largest * max(1.0, nuisance_at("bkg_scale", max(sigmas))))
    )
    nus = []
    for name in names:
        for s in sigmas:
            nus.append(np.asarray(base.nu_true).copy())
            nus[-1][:, schema.NUISANCES.index(name)] = nuisance_at(name, s)
    items = base._replace(mu_true=np.tile(base.mu_true, len(nus)), nu_true=np.concatenate(nus))
    outputs = ctx.evaluate(items, eval_key, shared=dataclasses.replace(ctx.shared, max_rate=rate), unit=ctx.name)
    parts = []
    for j, name in enumerate(names):

        def evaluate(b, j=j):
            part = slice((j * len(sigmas) + b) * n_base, (j * len(sigmas) + b + 1) * n_base)
            return interval_metrics(jax.tree.map(lambda x: x[part], outputs), items.mu_true[part])

        labels = [f"{name}={nuisance_at(name, s):.4g} ({s:+g} sigma)" for s in sigmas]
        parts.append(
            analyses.feature_ood(
                evaluate,
                labels,
                sigmas,
                name,
                support=[n_base] * len(sigmas),
                target={"coverage": (config.studies.trust_coverage_min, True)},
            )
        )
    summary = {
        "distance_unit": "prior standard deviations from the prior centre (ln GeV for soft_met)",
        "pseudo_experiments_per_point": n_base,
        "trust_coverage_min": config.studies.trust_coverage_min,
        **{k: v for p in parts for k, v in p.summary.items()},
    }
    return StudyResult("feature_ood", tuple(r for p in parts for r in p.rows), summary)


def _rotation_scan(ctx: StudyContext) -> StudyResult:
    items_key, eval_key = jax.random.split(ctx.key)
    items = _conditions(ctx, items_key)
    data = ctx.data

    def evaluate(angle):
        # The soft-MET directions turn with the event, so the rotation is an exact symmetry of the
        # simulated physics: only what the classifier does with azimuths changes. Same PE keys at
        # every angle.
        c, s = np.cos(angle), np.sin(angle)
        rotated = data._replace(
            pool=data.pool._replace(pri=rotate_azimuth(data.pool.pri, angle)),
            met_noise=data.met_noise @ jnp.asarray([[c, s], [-s, c]], jnp.float32),
        )
        out = ctx.evaluate(items, eval_key, shared=ctx.task.prepare(ctx.params, rotated, ctx.config))
        return {
            **interval_metrics(out, items.mu_true),
            "mean_mu_hat_minus_mu": float(np.mean(out.profiled_mu_hat - items.mu_true)),
        }

    angles = np.linspace(0.0, 2 * np.pi, ctx.config.studies.rotation_angles, endpoint=False)
    result = analyses.rotation_scan(evaluate, list(angles), stage=_stage(ctx))
    return StudyResult(
        result.study,
        result.rows,
        {**result.summary, "axis": "beam (z): azimuths shifted", "n_pseudo_experiments": int(items.mu_true.size)},
    )


SAMPLE_EFFICIENCY = Study(catalogue.SAMPLE_EFFICIENCY, _sample_efficiency)
FEATURE_OOD = Study(catalogue.FEATURE_OOD, _feature_ood)
ROTATION_SCAN = Study(catalogue.ROTATION_SCAN, _rotation_scan)
