"""``fair_universe-v0``'s own studies (breakdown, correlation, stability are the generic ones):
``sample_efficiency`` retrains the classifier on nested subsets and scores the same PEs;
``feature_ood`` pushes each nuisance to k prior sigmas (trusted range: coverage >= the minimum);
``rotation_scan`` turns the PE pool about the beam axis (invariant physics, absolute azimuths);
``variants`` retrains the classifier with and without the absolute azimuths and measures the mu-hat
shift under a rotation; ``attribution`` is the permutation importance of the classifier's inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxbench.errors import ConfigError
from jaxbench.studies import StudyResult, analyses, catalogue, ranges
from jaxbench.studies.context import Study, StudyContext

from . import schema
from .checks import training_split
from .classifier import VALID_FRACTION, balanced_weights, make_logit_fn
from .estimator import PEOutputs, fit_templates, train_on_pool
from .pseudo_experiments import max_event_rate
from .schema import Conditions, Data, EventPool
from .scoring import interval_metrics, scored
from .systematics import PHI_COLUMNS, apply_nominal, nuisance_at, rotate_azimuth
from .templates import event_features

PHI_FEATURES = PHI_COLUMNS  # the absolute azimuths among the classifier's inputs; DER_* angles are relative


def _conditions(ctx: StudyContext, key: jax.Array):
    config = ctx.config
    analysis = dataclasses.replace(config.analysis, n_pe_per_mu=config.studies.study_pe_per_mu)
    return ctx.task.conditions(key, ctx.data, dataclasses.replace(config, analysis=analysis))


def _stage(ctx: StudyContext):
    return lambda name, fn: ctx.stage(f"{ctx.name}.{name}", fn)


def _passed_training_events(ctx: StudyContext) -> np.ndarray:
    """Indices of the training pool's events that pass the nominal cuts (what the classifier trains on)."""
    train = ctx.data.train
    return np.flatnonzero(np.asarray(apply_nominal(train.pri, train.weights, train.process)[2]))


def _subset_sizes(ctx: StudyContext, fractions: tuple[float, ...], key: str, n_passed: int) -> list[int]:
    """Training-set sizes of ``fractions`` (at least 200 events), refused when the smallest is under one batch."""
    sizes = sorted({max(200, int(round(f * n_passed))) for f in fractions})
    batch = ctx.config.classifier.batch_size
    if training_split(sizes[0])[0] < batch:
        needed = (batch / (1 - VALID_FRACTION) + 1) / n_passed
        raise ConfigError(
            f"studies.{key}={fractions}: the smallest subset ({sizes[0]} of {n_passed} events) trains on fewer "
            f"than classifier.batch_size={batch} events; pass --set studies.{key}=F,1 with F >= {needed:.3g}, "
            "or a smaller classifier.batch_size."
        )
    return sizes


def _train_subset(ctx: StudyContext, key: jax.Array, idx: np.ndarray, drop: tuple[str, ...] = ()) -> tuple:
    """(classifier, history, templates) of a classifier trained on the passed training events ``idx``."""
    train, config = ctx.data.train, ctx.config
    subset = jax.tree.map(lambda a: a[_passed_training_events(ctx)[idx]], train)
    classifier, history = train_on_pool(key, subset, config.classifier, drop)
    templates = fit_templates(classifier, ctx.data.pool, ctx.data.met_noise, config.analysis.n_bins)
    return classifier, history, templates


def _sample_efficiency(ctx: StudyContext) -> StudyResult:
    config = ctx.config
    n_passed = _passed_training_events(ctx).size
    items_key, eval_key, train_key = jax.random.split(ctx.key, 3)
    items = _conditions(ctx, items_key)

    def train_eval(key, idx):
        classifier, history, templates = _train_subset(ctx, key, idx)
        out = ctx.evaluate(
            items, eval_key, shared=dataclasses.replace(ctx.shared, classifier=classifier, templates=templates)
        )
        loss = float(np.asarray(history.valid_loss)[-1])
        return {**interval_metrics(out, items.mu_true), "classifier_val_loss": loss}

    sizes = _subset_sizes(ctx, config.studies.efficiency_fractions, "efficiency_fractions", n_passed)
    result = analyses.sample_efficiency(
        train_eval, n_passed, sizes, range(config.studies.efficiency_seeds), train_key, stage=_stage(ctx)
    )
    return StudyResult(result.study, result.rows, {**result.summary, "n_pseudo_experiments": int(items.mu_true.size)})


def grid_conditions(
    base: Conditions, names: tuple[str, str], sigmas_a: Sequence[float], sigmas_b: Sequence[float]
) -> Conditions:
    """``base`` repeated once per cell of a 2-D grid, nuisances ``names`` fixed at (a, b) prior sigmas;
    cell (i, j) holds rows [(i * len(b) + j) * N, ... + N) of the result."""
    ia, ib = (schema.NUISANCES.index(n) for n in names)
    nus = []
    for a in sigmas_a:
        for b in sigmas_b:
            nu = np.array(base.nu_true, np.float32, copy=True)
            nu[:, ia], nu[:, ib] = nuisance_at(names[0], a), nuisance_at(names[1], b)
            nus.append(nu)
    cells = len(sigmas_a) * len(sigmas_b)
    return base._replace(mu_true=np.tile(np.asarray(base.mu_true), cells), nu_true=np.concatenate(nus))


def _part_metrics(outputs: PEOutputs, mu_true: np.ndarray, part: slice) -> tuple[dict[str, float], int]:
    """``interval_metrics`` of the PEs ``part`` and their support: the PEs scored (all when none is)."""
    piece = jax.tree.map(lambda x: x[part], outputs)
    n_scored = int(scored(piece).sum())
    return interval_metrics(piece, mu_true[part]), n_scored or int(mu_true[part].shape[0])


def _coverage_map(ctx: StudyContext, base: Conditions, key: jax.Array, shared) -> tuple[dict, dict]:
    """The 2-D trusted map of coverage over tes x jes (``studies.map_sigmas``): every cell's PEs in one sweep."""
    config, names = ctx.config, ("tes", "jes")
    sigmas = [float(s) for s in config.studies.map_sigmas]
    n_base = base.mu_true.shape[0]
    items = grid_conditions(base, names, sigmas, sigmas)
    outputs = ctx.evaluate(items, key, shared=shared, unit=f"{ctx.name}.map")
    coverage, support = np.empty((len(sigmas), len(sigmas))), np.empty((len(sigmas), len(sigmas)), int)
    for c in range(coverage.size):
        metrics, support.flat[c] = _part_metrics(outputs, items.mu_true, slice(c * n_base, (c + 1) * n_base))
        coverage.flat[c] = metrics["coverage"]
    region = ranges.trusted_region(
        sigmas, sigmas, coverage, config.studies.trust_coverage_min, support=support, binomial=True
    )
    covered = (outputs.profiled_p16 <= items.mu_true) & (items.mu_true <= outputs.profiled_p84)
    arrays = {
        "map.tes": np.asarray(items.nu_true)[:, 0],
        "map.jes": np.asarray(items.nu_true)[:, 1],
        "map.covered": np.asarray(covered),
        "map.scored": scored(outputs),
    }
    return {**region, "features": list(names)}, arrays


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
    shared = dataclasses.replace(ctx.shared, max_rate=rate)
    nus = []
    for name in names:
        for s in sigmas:
            nus.append(np.asarray(base.nu_true).copy())
            nus[-1][:, schema.NUISANCES.index(name)] = nuisance_at(name, s)
    items = base._replace(mu_true=np.tile(base.mu_true, len(nus)), nu_true=np.concatenate(nus))
    outputs = ctx.evaluate(items, eval_key, shared=shared, unit=ctx.name)
    parts = []
    for j, name in enumerate(names):
        points = [
            _part_metrics(
                outputs, items.mu_true, slice((j * len(sigmas) + b) * n_base, (j * len(sigmas) + b + 1) * n_base)
            )
            for b in range(len(sigmas))
        ]
        labels = [f"{name}={nuisance_at(name, s):.4g} ({s:+g} sigma)" for s in sigmas]
        parts.append(
            analyses.feature_ood(
                lambda b, points=points: points[b][0],
                labels,
                sigmas,
                name,
                support=[n for _, n in points],  # coverage is a fraction of the scored PEs: binomial errors
                target={"coverage": (config.studies.trust_coverage_min, True)},
                binomial=("coverage",),
                trend=config.studies.ood_trend,
            )
        )
    maps, arrays = {}, {}
    if {"tes", "jes"} <= set(config.analysis.systematics):
        region, arrays = _coverage_map(ctx, base, jax.random.fold_in(eval_key, 1), shared)
        maps["coverage tes x jes"] = region
    summary = {
        "distance_unit": "prior standard deviations from the prior centre (ln GeV for soft_met)",
        "pseudo_experiments_per_point": n_base,
        "trust_coverage_min": config.studies.trust_coverage_min,
        "trend": config.studies.ood_trend,
        **{
            f"map {name}": {
                "trusted_fraction": m["trusted_fraction"],
                "grid_sigmas": m["distance_a"],
                "centre_coverage": m["value"][m["distance_a"].index(0.0)][m["distance_b"].index(0.0)],
            }
            for name, m in maps.items()
        },
        **{k: v for p in parts for k, v in p.summary.items()},
        "maps": maps,
    }
    return StudyResult("feature_ood", tuple(r for p in parts for r in p.rows), summary, arrays)


def rotated(data: Data, angle: float) -> Data:
    """The PE pool turned by ``angle`` (rad) about the beam axis: every azimuth and the soft-MET noise
    (an exact symmetry of the simulated physics; only what a classifier does with azimuths changes)."""
    c, s = np.cos(angle), np.sin(angle)
    return data._replace(
        pool=data.pool._replace(pri=rotate_azimuth(data.pool.pri, angle)),
        met_noise=data.met_noise @ jnp.asarray([[c, s], [-s, c]], jnp.float32),
    )


def _rotation_scan(ctx: StudyContext) -> StudyResult:
    items_key, eval_key = jax.random.split(ctx.key)
    items = _conditions(ctx, items_key)

    def evaluate(angle):
        # Same PE keys at every angle (the prepared pool keeps its had-pT order): paired draws.
        out = ctx.evaluate(items, eval_key, shared=ctx.task.prepare(ctx.params, rotated(ctx.data, angle), ctx.config))
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


VARIANTS = {"all_features": (), "no_azimuth": PHI_FEATURES}  # the reference first


def rotation_response(straight: PEOutputs, turned: PEOutputs, mu_true: np.ndarray) -> dict[str, float]:
    """The same PEs unrotated and rotated: interval metrics of both (the width's standard error over the
    PEs) and the mean mu-hat shift (rotated - unrotated) with its standard error, over the PEs scored in both."""
    both = scored(straight) & scored(turned)
    shift = (np.asarray(turned.profiled_mu_hat) - np.asarray(straight.profiled_mu_hat))[both]
    rot = interval_metrics(turned, mu_true)
    ok = scored(straight)
    width = (np.asarray(straight.profiled_p84) - np.asarray(straight.profiled_p16))[ok if ok.any() else slice(None)]
    return {
        **interval_metrics(straight, mu_true),
        "width_error": float(np.std(width, ddof=1) / np.sqrt(width.size)) if width.size > 1 else float("nan"),
        "coverage_rotated": rot["coverage"],
        "width_rotated": rot["width"],
        "mu_hat_shift": float(np.mean(shift)) if shift.size else float("nan"),
        "mu_hat_shift_error": float(np.std(shift, ddof=1) / np.sqrt(shift.size)) if shift.size > 1 else float("nan"),
        "mu_hat_shift_abs": float(np.mean(np.abs(shift))) if shift.size else float("nan"),
        "mu_hat_shift_abs_error": float(np.std(np.abs(shift), ddof=1) / np.sqrt(shift.size))
        if shift.size > 1
        else float("nan"),
    }


def _mean_with_error(values: list[float], errors: list[float]) -> dict[str, float]:
    """The mean over seeds of per-seed values, its error from the per-seed errors and the seeds' spread."""
    spread = np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    within = np.sqrt(np.sum(np.square(errors))) / len(errors)
    return {"mean": float(np.mean(values)), "error": float(np.hypot(within, spread)), "seeds": len(values)}


def _answer(result: StudyResult) -> dict:
    """Per training size: each variant's mean mu-hat shift and mean |shift| under the rotation and mean
    width, and the width cost of dropping the azimuths (paired by seed), each with its error (PEs and seeds)."""
    reference, other = VARIANTS
    out = {}
    for n in sorted({r.x for r in result.rows}):

        def per_seed(metric, variant, n=n):
            return {r.seed: r.value for r in result.select(metric, group=variant) if r.x == n}

        entry = {  # the signed shift can average out over seeds; the mean |shift| cannot
            f"{metric}.{v}": _mean_with_error(
                list(per_seed(metric, v).values()), list(per_seed(f"{metric}_error", v).values())
            )
            for metric in ("mu_hat_shift", "mu_hat_shift_abs")
            for v in VARIANTS
        }
        width = {v: (per_seed("width", v), per_seed("width_error", v)) for v in VARIANTS}
        for v in VARIANTS:
            entry[f"width.{v}"] = _mean_with_error(list(width[v][0].values()), list(width[v][1].values()))
        seeds = sorted(width[other][0])
        entry[f"width_cost.{other}"] = _mean_with_error(
            [width[other][0][s] - width[reference][0][s] for s in seeds],
            [np.hypot(width[other][1][s], width[reference][1][s]) for s in seeds],  # ignores the PEs' correlation
        )
        out[f"n={int(n)}"] = entry
    return out


def _variants(ctx: StudyContext) -> StudyResult:
    config = ctx.config
    n_passed = _passed_training_events(ctx).size
    items_key, eval_key, train_key = jax.random.split(ctx.key, 3)
    items = _conditions(ctx, items_key)
    angle = float(config.studies.variant_angle)
    turned_shared = ctx.task.prepare(ctx.params, rotated(ctx.data, angle), config)

    def train_eval_for(drop):
        def train_eval(key, idx):
            classifier, history, templates = _train_subset(ctx, key, idx, drop)
            outputs = [  # same PE keys: the rotated pool draws the same counts per event (paired)
                ctx.evaluate(items, eval_key, shared=dataclasses.replace(s, classifier=classifier, templates=templates))
                for s in (ctx.shared, turned_shared)
            ]
            loss = float(np.asarray(history.valid_loss)[-1])
            return {**rotation_response(*outputs, items.mu_true), "classifier_val_loss": loss}

        return train_eval

    sizes = _subset_sizes(ctx, config.studies.variant_fractions, "variant_fractions", n_passed)
    result = analyses.variant_study(
        {name: (train_eval_for(drop), None) for name, drop in VARIANTS.items()},
        n_passed,
        sizes,
        range(config.studies.variant_seeds),
        train_key,
        stage=_stage(ctx),
    )
    summary = {
        "question": "does dropping the absolute azimuths (PRI_*_phi) remove the mu-hat shift under a rotation, "
        "and what does it cost in interval width?",
        "rotation_rad": angle,
        "dropped": list(PHI_FEATURES),
        "answer": _answer(result),
        "n_pseudo_experiments": int(items.mu_true.size),
        **result.summary,
    }
    return StudyResult(result.study, result.rows, summary)


def classifier_importance(
    key: jax.Array, classifier: dict, hidden: tuple[int, ...], pool: EventPool, n_events: int, n_repeats: int
) -> StudyResult:
    """Permutation importance of the classifier's 28 inputs on its per-event class-balanced BCE, over up
    to ``n_events`` events of ``pool`` that pass the nominal cuts (half signal where possible)."""
    pick_key, perm_key = jax.random.split(key)
    pri, weights, passed = apply_nominal(jnp.asarray(pool.pri), jnp.asarray(pool.weights), jnp.asarray(pool.process))
    labels = np.asarray(pool.process) == schema.SIGNAL
    chosen = []
    for c, cls in enumerate((labels, ~labels)):
        idx = np.flatnonzero(np.asarray(passed) & cls)
        take = min(idx.size, n_events // 2)
        chosen.append(idx[np.asarray(jax.random.permutation(jax.random.fold_in(pick_key, c), idx.size))[:take]])
    rows = np.sort(np.concatenate(chosen))
    inputs = event_features(pri[rows])
    y = jnp.asarray(labels[rows], jnp.float32)
    w = balanced_weights(weights[rows], y) * (rows.size / 2)  # each class sums to n/2: the mean is the training loss
    logit = make_logit_fn(hidden)

    def per_event_bce(x):
        return w * optax.sigmoid_binary_cross_entropy(logit(classifier, x), y)

    result = analyses.permutation_importance(
        per_event_bce, inputs, perm_key, schema.FEATURE_COLUMNS, n_repeats=n_repeats, group="classifier BCE"
    )
    summary = {
        **result.summary,
        "metric": "per-event class-balanced binary cross-entropy of the classifier (held-out PE-pool events)",
        "n_events": int(rows.size),
        "n_signal": int(labels[rows].sum()),
    }
    return StudyResult(result.study, result.rows, summary)


def _attribution(ctx: StudyContext) -> StudyResult:
    s = ctx.config.studies
    return classifier_importance(
        ctx.key,
        ctx.params.classifier,
        ctx.config.classifier.hidden,
        ctx.data.pool,
        s.attribution_events,
        s.attribution_repeats,
    )


SAMPLE_EFFICIENCY = Study(catalogue.SAMPLE_EFFICIENCY, _sample_efficiency)
FEATURE_OOD = Study(catalogue.FEATURE_OOD, _feature_ood)
ROTATION_SCAN = Study(catalogue.ROTATION_SCAN, _rotation_scan)
AZIMUTH_VARIANTS = Study(catalogue.VARIANTS, _variants)
ATTRIBUTION = Study(catalogue.ATTRIBUTION, _attribution)
