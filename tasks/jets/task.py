"""``top_tagging-v0``: a Particle Transformer tells hadronic top-quark jets from QCD jets (Pythia 8 + FastJet jets,
or TopLandscape files), beside the jet physicist's baseline (jet mass and N-subjettiness tau3/tau2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels import classification
from jaxbench.studies import generic
from jaxbench.task import Stage, Task

from . import baseline, checks, generator, report, studies, topland, training
from .config import CRITERIA, STUDIES, JetsConfig, datacard
from .schema import JetData, Jets, jet_energy_gev, jet_pt_gev
from .tagger import Tagger, part_config

#: Distributions the task imports (their versions go into the manifest).
PACKAGES = ("flax", "optax", "pythia8mc", "fastjet", "tables", "pandas", "pyarrow", "awkward", "matplotlib")
#: The split flags (ttv) jaxbench writes for generated splits (the release does not document its values).
TTV = {"train": 0, "test": 1, "val": 2}


def trim(jets: Jets) -> Jets:
    """The jets without the trailing slots that are empty in every jet. Every constituent stays: the jet axis, its
    energy and mass are sums over all of them (ParT then reads the leading ``max_particles``)."""
    used = int(np.max(np.sum(np.asarray(jets.p4)[..., 0] > 0, axis=1), initial=1))
    return jets._replace(p4=np.ascontiguousarray(jets.p4[:, : max(1, used)]))


def generate(key: jax.Array, config: JetsConfig) -> JetData:
    """Balanced train / val / test jets from Pythia 8 + FastJet (one key each), and the energy-enriched test set;
    cached under $JAXBENCH_CACHE/jets."""
    d, workers = config.data, config.data.workers or os.cpu_count() or 1
    cache = generator.default_cache_dir()
    keys = dict(zip(("train", "val", "test", "energy_test"), jax.random.split(key, 4)))
    window = dict(pt_range=tuple(d.pt_range_gev), eta_max=d.eta_max)
    splits = {}
    for name, n in (("train", d.n_train), ("val", d.n_val), ("test", d.n_test)):
        jets = generator.cached_sample(cache, keys[name], -(-n // 2), workers=workers, **window)
        splits[name] = trim(jets)._replace(ttv=np.full(jets.num_jets, TTV[name], np.int32))
    energy = generator.cached_sample(
        cache,
        keys["energy_test"],
        d.energy_test_per_bin,
        workers=workers,
        energy_edges=tuple(config.studies.energy_edges_gev),
        **window,
    )
    energy = trim(energy)._replace(ttv=np.full(energy.num_jets, TTV["test"], np.int32))
    return JetData(splits["train"], splits["val"], splits["test"], energy)


def load(path: Path, key: jax.Array, config: JetsConfig) -> JetData:
    """TopLandscape files in ``path`` (train/val/test .h5, or the ParT parquet conversion): the first n_train /
    n_val / n_test jets of each (0: all), every constituent (``trim``); ``energy_test.h5`` if there."""
    d = config.data
    limits = {"train": d.n_train or None, "val": d.n_val or None, "test": d.n_test or None}
    data = topland.read_dataset(Path(path), limit=limits)
    return JetData(*(None if jets is None else trim(jets) for jets in data))


def save(path: Path, data: JetData, config: JetsConfig) -> Path:
    """The splits as TopLandscape HDF5 tables (806 columns) in the directory ``path``; returns it."""
    topland.write_dataset(Path(path), data)
    return Path(path)


class Params(NamedTuple):
    """The trained tagger (weights, per-step history) and the baseline's logistic regression."""

    weights: Any
    history: training.TrainHistory
    baseline: baseline.LogisticParams


def fit(key: jax.Array, data: JetData, config: JetsConfig, stage: Stage) -> Params:
    """ParT on the training jets (constant steps, checkpointed; a resumed run only loads), then the baseline."""

    def train_model():
        everything = [np.arange(data.train.num_jets)]
        weights, history = training.train_sets(
            stage,
            "model",
            jnp.stack([key]),
            data.train,
            everything,
            part_config(config),
            config.model.variant,
            config.training,
        )
        return {"weights": weights[0], "history": training.TrainHistory(*(h[0] for h in history))}

    model = stage("model", train_model)
    shapes = stage("baseline.substructure", lambda: baseline.substructure_bucketed(data.train.p4))
    fitted = stage("baseline.fit", lambda: baseline.fit_baseline(baseline.baseline_features(shapes), data.train.label))
    return Params(model["weights"], training.TrainHistory(*model["history"]), fitted)


def evaluate(shared: Tagger, items: Jets, keys: jax.Array) -> dict[str, jax.Array]:
    """Per jet: ParT's top probability, the baseline's, and the baseline's observables: jet mass (GeV), tau3/tau2,
    tau2/tau1 (keys unused)."""
    shapes = baseline.substructure(items.p4)
    return {
        "score": training.top_probability(shared.weights, shared.config, shared.variant, items.p4),
        "baseline_score": baseline.baseline_score(shared.baseline, baseline.baseline_features(shapes)),
        "mass_gev": shapes.mass,
        "tau32": shapes.tau32,
        "tau21": shapes.tau21,
    }


def per_sample_metrics(outputs: dict, items: Jets) -> dict[str, np.ndarray]:
    """Per test jet: right or wrong at score 0.5 (ParT and the baseline) and ParT's cross-entropy (nats)."""
    label = np.asarray(items.label)
    score = np.clip(np.asarray(outputs["score"], np.float64), 1e-7, 1 - 1e-7)
    return {
        "correct": ((score > 0.5) == (label == 1)).astype(np.float32),
        "cross_entropy": -np.where(label == 1, np.log(score), np.log1p(-score)).astype(np.float32),
        "baseline_correct": ((np.asarray(outputs["baseline_score"]) > 0.5) == (label == 1)).astype(np.float32),
    }


def classification_metrics(scores: np.ndarray, labels: np.ndarray, key: jax.Array, n_boot: int) -> dict:
    """Accuracy, signal / background accuracy, AUC, 1/eps_B at eps_S = 0.5 and 0.3, each with its bootstrap
    standard error (``<name>_error``, None when a resample left no background passing), the rejections bounded as
    :func:`~jaxbench.kernels.classification.bounded` does (flagged ``<name>_is_lower_bound``)."""
    values, errors = classification.bootstrap(jnp.asarray(scores), jnp.asarray(labels), key, n_boot)
    values, bounds = classification.bounded(values, labels)
    out = {f"{name}_is_lower_bound": flag for name, flag in bounds.items()}
    for name, value in values.items():
        error = float(errors[name])
        out[name], out[f"{name}_error"] = value, error if np.isfinite(error) else None
    return out


def score(per_sample: dict, outputs: dict, items: Jets, key: jax.Array, config: JetsConfig) -> dict:
    """ParT's metrics (with bootstrap errors) at the top level, the baseline's under ``baseline``."""
    part_key, baseline_key = jax.random.split(key)
    n_boot = config.studies.bootstrap
    metrics = classification_metrics(outputs["score"], items.label, part_key, n_boot)
    return {
        **metrics,
        "mean_cross_entropy": float(np.mean(per_sample["cross_entropy"])),
        "baseline": classification_metrics(outputs["baseline_score"], items.label, baseline_key, n_boot),
        "test_jets": int(items.num_jets),
        "signal_fraction": float(np.mean(np.asarray(items.label) == 1)),
        "variant": config.model.variant,
    }


def features(items: Jets, data: JetData) -> dict[str, np.ndarray]:
    """Per test jet: pT and energy (GeV), constituent count, and whether it is a top jet."""
    return {
        "jet_pt_gev": jet_pt_gev(items),
        "jet_energy_gev": jet_energy_gev(items),
        "constituents": np.sum(np.asarray(items.p4)[..., 0] > 0, axis=1).astype(np.float32),
        "is_top": np.asarray(items.label, np.float32),
    }


def make_task(task_id: str, config: JetsConfig) -> Task:
    """The registry's factory."""
    found = {**studies.STUDIES, "correlation": generic.correlation(), "breakdown": generic.breakdown()}
    return Task(
        id=task_id,
        config=config,
        datacard=datacard(config),
        criteria=CRITERIA,
        generate=generate,
        load=load,
        save=save,
        fit=fit,
        conditions=lambda key, data, cfg: data.test,
        prepare=lambda params, data, cfg: Tagger(params.weights, params.baseline, part_config(cfg), cfg.model.variant),
        evaluate=evaluate,
        per_sample_metrics=per_sample_metrics,
        score=lambda per_sample, outputs, items, key: score(per_sample, outputs, items, key, config),
        features=features,
        summary=report.summary,
        report=report.sections,
        studies={name: found[name] for name in STUDIES},
        chunk_size=config.chunk_size,
        data_files=topland.dataset_files,
        validate=checks.validate,
        check_data=checks.check_data,
        packages=PACKAGES,
        partial=False,
    )
