"""The jet-tagging studies of the structural-interpretation method (its section 5): sample efficiency, the physical
prior against raw four-momenta (variants), rotation about the beam axis, and the out-of-distribution jet-energy
test with signal and background accuracy per bin.

The models of one (variant, training-set size) train as one vmapped program over seeds and are shared units
``sizes.<variant>.n<n>.seeds<M>``: sample_efficiency trains the physics ones, variants adds the raw ones, and the
rotation scan reuses both. Every training set is padded to the whole training split, so each variant compiles its
training step once for all sizes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels import classification
from jaxbench.report import Figure, figure_png
from jaxbench.studies import StudyResult, analyses, catalogue, make_rows
from jaxbench.studies.context import Study, StudyContext, StudyInfo
from jaxbench.studies.ranges import trusted_range

from . import features, plots, training
from .config import VARIANTS
from .schema import jet_energy_gev
from .tagger import Tagger, part_config

#: The metrics of a trained model on a test set, and those that are measured per jet-energy bin.
METRICS = ("accuracy", "auc", "rejection_at_50", "rejection_at_30", "signal_accuracy", "background_accuracy")
BINNED = ("accuracy", "auc", "signal_accuracy", "background_accuracy")


def _scores(shared: Any, items: Any, keys: jax.Array) -> dict[str, jax.Array]:
    """ParT's top probability (B, A) at every angle (the studies' evaluate: no N-subjettiness); one angle at a time
    inside the program (``lax.map``), so memory does not grow with the number of angles."""
    tagger, angles = shared
    at = lambda angle: training.top_probability(  # noqa: E731
        tagger.weights, tagger.config, tagger.variant, features.rotate_about_beam(items.p4, angle)
    )
    return {"score": jax.lax.map(at, angles).T}


def score_items(ctx: StudyContext, weights: Any, variant: str, items: Any, angles_rad: Any = (0.0,)) -> np.ndarray:
    """(N, A) top probabilities of ``items`` rotated about the beam axis by each of ``angles_rad``, in one sharded
    sweep like the main one."""
    tagger = Tagger(weights, ctx.shared.baseline, part_config(ctx.config, variant), variant)
    angles = jnp.asarray(angles_rad, jnp.float32)
    return ctx.map(_scores, (tagger, angles), items, ctx.key, description=f"{ctx.name} ({variant})")["score"]


def model_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``classification.metrics`` as floats, rejections bounded (``classification.bounded``)."""
    return classification.bounded(classification.metrics(jnp.asarray(scores), jnp.asarray(labels)), labels)[0]


def train_models(ctx: StudyContext, unit: str, variant: str, keys: jax.Array, subsets: list[np.ndarray]) -> list:
    """``training.train_sets`` on the run's training jets with the run's settings: ``[weights of model m]``."""
    config, settings = part_config(ctx.config, variant), ctx.config.training
    return training.train_sets(ctx.stage, unit, keys, ctx.data.train, subsets, config, variant, settings)[0]


def size_trainer(ctx: StudyContext, variant: str, models: dict) -> Callable[[jax.Array, np.ndarray], dict]:
    """``train_eval_many(keys (M,), idx (M, n)) -> {metric: (M,)}`` for analyses.sample_efficiency: the shared unit
    ``sizes.<variant>.n<n>.seeds<M>`` ({"s<m>": {"weights", "score"}}); ``models[n]`` collects the entries."""
    labels = np.asarray(ctx.items.label)

    def train_eval_many(keys, idx):
        unit = f"sizes.{variant}.n{idx.shape[1]}.seeds{len(idx)}"

        def train():
            weights = train_models(ctx, unit, variant, keys, list(idx))
            return {
                f"s{m}": {"weights": w, "score": score_items(ctx, w, variant, ctx.items)[:, 0]}
                for m, w in enumerate(weights)
            }

        models[idx.shape[1]] = entries = ctx.stage(unit, train)
        per_model = [model_metrics(entries[f"s{m}"]["score"], labels) for m in range(len(idx))]
        return {k: np.asarray([m[k] for m in per_model]) for k in METRICS}

    return train_eval_many


def training_sizes(ctx: StudyContext) -> list[int]:
    """The training-set sizes of the efficiency fractions (at least one jet each, distinct)."""
    n = ctx.data.train.num_jets
    return sorted({max(1, round(f * n)) for f in ctx.config.studies.efficiency_fractions})


def sizes_key(ctx: StudyContext) -> jax.Array:
    """The key of the size units (the run's shared study key: a unit must not depend on the study that trains it)."""
    return jax.random.fold_in(ctx.shared_key, 0x5123)


def _with_rocs(result: StudyResult, ctx: StudyContext, models: dict[str, dict]) -> StudyResult:
    """The result with each size's seed-0 test scores (for the ROC plot) and the test labels as arrays."""
    arrays = {"labels": np.asarray(ctx.items.label)}
    for variant, by_size in models.items():
        arrays |= {f"score.{variant}.n{n}": np.asarray(e["s0"]["score"]) for n, e in sorted(by_size.items())}
    return dataclasses.replace(result, arrays={**(result.arrays or {}), **arrays})


def _sample_efficiency(ctx: StudyContext) -> StudyResult:
    models: dict[int, dict] = {}
    sizes, seeds = training_sizes(ctx), range(ctx.config.studies.efficiency_seeds)
    variant = ctx.config.model.variant
    trainer = size_trainer(ctx, variant, models)
    result = analyses.sample_efficiency(
        None, ctx.data.train.num_jets, sizes, seeds, sizes_key(ctx), train_eval_many=trainer
    )
    summary = {**result.summary, "steps": ctx.config.training.steps, "training_jets": ctx.data.train.num_jets}
    return _with_rocs(dataclasses.replace(result, summary={**summary, "variant": variant}), ctx, {variant: models})


def _variants(ctx: StudyContext) -> StudyResult:
    models: dict[str, dict] = {v: {} for v in VARIANTS}
    sizes, seeds = training_sizes(ctx), range(ctx.config.studies.efficiency_seeds)
    variants = {v: (None, size_trainer(ctx, v, models[v])) for v in VARIANTS}
    result = analyses.variant_study(variants, ctx.data.train.num_jets, sizes, seeds, sizes_key(ctx))
    inputs = {
        "physics": "7 kinematic features per particle relative to the jet axis (Delta eta, Delta phi, log pT, log E, "
        "log pT/pT_jet, log E/E_jet, Delta R) and 4 pair features (ln Delta, ln kT, ln z, ln m^2) in the attention",
        "raw": "the constituents' (E, px, py, pz) alone, no pair features",
    }
    return _with_rocs(dataclasses.replace(result, summary={**result.summary, "inputs": inputs}), ctx, models)


def rotation_angles_deg(ctx: StudyContext) -> np.ndarray:
    """0, step, ... below the span (36 angles of 5 degrees over 180 by default)."""
    config = ctx.config.studies
    return np.arange(0.0, config.rotation_span_deg - 1e-9, config.rotation_step_deg)


def _rotation_scan(ctx: StudyContext) -> StudyResult:
    """AUC and accuracy of the seed-0 model of every (variant, size) on the test jets rotated about the beam axis."""
    sizes, seeds, labels = training_sizes(ctx), range(ctx.config.studies.efficiency_seeds), np.asarray(ctx.items.label)
    rows, summary = [], {}
    for variant in VARIANTS:
        models: dict[int, dict] = {}
        analyses.sample_efficiency(  # trains nothing when sample_efficiency / variants ran: the units are shared
            None,
            ctx.data.train.num_jets,
            sizes,
            seeds,
            sizes_key(ctx),
            train_eval_many=size_trainer(ctx, variant, models),
        )
        angles = rotation_angles_deg(ctx)
        for n in sizes:
            weights = models[n]["s0"]["weights"]
            rotated = ctx.stage(  # (N, A): every angle in one sweep
                f"rotation.{variant}.n{n}",
                lambda w=weights: score_items(ctx, w, variant, ctx.items, np.deg2rad(angles)),
            )
            column = {float(a): i for i, a in enumerate(angles)}

            def evaluate(angle_deg, rotated=rotated):
                scores = rotated[:, column[float(angle_deg)]]
                return {k: v for k, v in model_metrics(scores, labels).items() if k in ("auc", "accuracy")}

            scan = analyses.rotation_scan(evaluate, angles, unit="deg")
            rows += [r._replace(group=f"{variant}, n={n}") for r in scan.rows]
            summary[f"{variant}, n={n}"] = scan.summary["metrics"]
    note = (
        "physics inputs are functions of Delta eta, Delta phi and pT: invariant under rotations about the beam "
        "axis, so their AUC must stay flat to float32 rounding; raw (E, px, py, pz) inputs are not"
    )
    return StudyResult("rotation_scan", tuple(rows), {"unit": "deg", "invariance": note, "delta": summary})


def energy_bins(ctx: StudyContext) -> tuple[np.ndarray, list[str]]:
    """The jet-energy edges (GeV) and their labels."""
    edges = np.asarray(ctx.config.studies.energy_edges_gev, float)
    return edges, [f"[{a:.0f}, {b:.0f}) GeV" for a, b in zip(edges[:-1], edges[1:])]


def _jet_energy(ctx: StudyContext) -> StudyResult:
    """The method's out-of-distribution jet-energy test: nested training ranges of lower energy bins, each with the
    same number of training jets (drawn uniformly from the range), every model tested on every bin."""
    test = ctx.data.energy_test if ctx.data.energy_test is not None else ctx.data.test
    edges, labels = energy_bins(ctx)  # labels of the bins
    n_bins, config = len(edges) - 1, ctx.config.studies
    train_energy, test_energy = jet_energy_gev(ctx.data.train), jet_energy_gev(test)
    ranges = analyses.nested_ranges(n_bins)
    partition = analyses.ood_partition(train_energy, test_energy, edges, ranges, jax.random.fold_in(ctx.key, 0))
    seeds = range(config.energy_seeds)
    subsets = [partition.train[r] for r in range(len(ranges)) for _ in seeds]
    keys = jnp.stack([jax.random.fold_in(ctx.key, 1 + i) for i in range(len(subsets))])

    def train_and_score():
        weights = train_models(ctx, "energy.models", ctx.config.model.variant, keys, subsets)
        return {f"m{i}": score_items(ctx, w, ctx.config.model.variant, test)[:, 0] for i, w in enumerate(weights)}

    scores = ctx.stage("energy.scores", train_and_score)
    which = np.full(test.num_jets, -1)  # each test jet's bin, -1 outside the edges (the partition's bins)
    for b, index in enumerate(partition.test):
        which[index] = b
    y = np.asarray(test.label)
    signal_fraction = [float(np.mean(y[index] == 1)) if len(index) else float("nan") for index in partition.test]
    rows, summary = [], {}
    for r, (lo, hi) in enumerate(ranges):
        group = f"train [{edges[lo]:.0f}, {edges[hi]:.0f}) GeV"
        per_seed = []
        for s in seeds:
            key = jax.random.fold_in(ctx.key, 1000 + r * len(seeds) + s)
            per_seed.append(
                classification.binned_metrics(scores[f"m{r * len(seeds) + s}"], y, which, n_bins, key, config.bootstrap)
            )
        for b in range(n_bins):
            for s, (values, errors) in zip(seeds, per_seed):
                v = {k: float(values[k][b]) for k in BINNED}
                e = {k: float(errors[k][b]) for k in v}
                v["signal_fraction"] = signal_fraction[b]
                rows += make_rows(group, labels[b], partition.distance[r, b], s, v, int(partition.support[b]), e)
        auc = [np.mean([float(vals["auc"][b]) for vals, _ in per_seed]) for b in range(n_bins)]
        auc_error = [np.mean([float(errs["auc"][b]) for _, errs in per_seed]) for b in range(n_bins)]
        entry = trusted_range(partition.distance[r], auc, config.trusted_auc, error=auc_error, trend="quadratic")
        summary[group] = {"trusted_range": {"auc": entry}, "training_bins": [labels[b] for b in range(lo, hi)]}
    summary.update(
        {
            "distance_unit": "jet-energy distance from the training range (GeV)",
            "training_jets_per_model": int(len(partition.train[0])),
            "test_support": [int(s) for s in partition.support],
            "signal_fraction": signal_fraction,
            "test_set": "energy-enriched generated test set" if ctx.data.energy_test is not None else "the test split",
        }
    )
    return StudyResult("jet_energy", tuple(rows), summary)


SAMPLE_EFFICIENCY = dataclasses.replace(
    catalogue.SAMPLE_EFFICIENCY,
    question="How do accuracy, AUC and background rejection grow with the number of training jets, at a constant "
    "number of steps?",
    plot=lambda r: [
        catalogue.line_plot("training jets", "Test metrics vs training jets (mean ± std over seeds).", True)(r)[0],
        Figure("study_sample_efficiency_roc", "ROC of each size (seed 0).", figure_png(plots.rocs(r.arrays))),
    ],
)
VARIANTS_INFO = dataclasses.replace(
    catalogue.VARIANTS,
    question="Does the physical prior (jet-axis kinematics and pair features) beat raw four-momenta, and at which "
    "training-set size does that turn?",
    plot=lambda r: [
        catalogue.line_plot("training jets", "Test metrics vs training jets, physics vs raw inputs.", True)(r)[0],
        Figure("study_variants_roc", "ROC of each size and input (seed 0).", figure_png(plots.rocs(r.arrays))),
    ],
)
ROTATION = dataclasses.replace(
    catalogue.ROTATION_SCAN,
    question="Does the AUC stay flat when the test jets are rotated about the beam axis (5-degree steps over 180)?",
    plot=catalogue.line_plot("rotation about the beam axis (deg)", "Test AUC and accuracy vs rotation angle."),
)
JET_ENERGY = StudyInfo(
    "jet_energy",
    "Out-of-distribution jet energy",
    "How far in jet energy beyond its training range can a tagger be trusted, and do signal and background "
    "accuracy move together?",
    lambda r: [
        *catalogue.FEATURE_OOD.plot(r),
        Figure(
            "study_jet_energy_accuracy",
            "Signal and background accuracy per jet-energy bin of the model trained on the two lowest bins, and "
            "the signal fraction of each test bin.",
            figure_png(plots.signal_background(r)),
        ),
    ],
)
STUDIES = {
    "sample_efficiency": Study(SAMPLE_EFFICIENCY, _sample_efficiency),
    "variants": Study(VARIANTS_INFO, _variants),
    "rotation_scan": Study(ROTATION, _rotation_scan),
    "jet_energy": Study(JET_ENERGY, _jet_energy),
}
