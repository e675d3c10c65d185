"""``mlff_aspirin-v0``: NequIP trained on a time-ordered MD trajectory (GFN2-xTB generated, or rMD17),
tested on evenly spaced frames of its last part (or the published rMD17 test set); errors in meV, meV/Å."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np

from jaxbench.studies import generic
from jaxbench.task import Stage, Task

from . import checks, data, md, metrics, nequip, report, studies, training
from .config import CRITERIA, STUDIES, MLFFConfig, datacard
from .equivariance import EQUIVARIANCE


class Params(NamedTuple):
    """The trained model, its training history and its training frames (indices into the trajectory)."""

    model: nequip.NequipParams
    history: training.TrainHistory
    train: np.ndarray


#: Distributions the task imports (their versions go into the manifest).
PACKAGES = ("e3nn-jax", "jraph", "flax", "optax", "orbax-checkpoint", "ase", "tblite", "matplotlib")


def generate(key: jax.Array, config: MLFFConfig) -> data.Dataset:
    """The embedded GFN2-xTB trajectory (cached under $JAXBENCH_CACHE or ~/.cache/jaxbench)."""
    options = dataclasses.asdict(config.md)
    return data.Dataset(md.generate_trajectory(key, config.data.molecule, config.data.n_frames, cache=True, **options))


def fit(key: jax.Array, dataset: data.Dataset, config: MLFFConfig, stage: Stage) -> Params:
    """NequIP on ``train_frames`` (random, or the first published) frames of the pool; a resumed run only loads."""
    pool, n = data.pool_and_test(dataset, config.data.split, config.data.test_fraction)[0], config.data.train_frames
    pick_key, train_key = jax.random.split(key)  # n <= len(pool): check_data ran
    train = stage(
        "split",
        lambda: (
            pool[:n]
            if config.data.split == "published"
            else np.sort(pool[np.asarray(jax.random.choice(pick_key, len(pool), (n,), replace=False))])
        ),
    )

    def train_model():
        chunks = -(-config.training.steps // config.training.checkpoint_every)
        with stage.progress("mlff: training NequIP", chunks) as bar:
            params, history = training.train(
                train_key,
                dataset.trajectory,
                train,
                config.model,
                checkpoint_dir=stage.directory("model"),
                callback=lambda step, h: bar(info=f"loss {h.loss[step - 1]:.3g}"),
                **dataclasses.asdict(config.training),
            )
        return {"params": nequip.as_arrays(params), "history": history}

    model = stage("model", train_model)
    return Params(nequip.from_arrays(config.model, model["params"]), model["history"], train)


def evaluate(model: nequip.NequipParams, items: data.EvaluationFrames, keys: jax.Array) -> nequip.Prediction:
    """Energies and forces of a batch of frames (keys unused: the model is deterministic)."""
    return nequip.predict(model, items.species, items.positions)


def score(per_sample: dict, items: data.EvaluationFrames, config: MLFFConfig) -> dict:
    """Energy (per molecule and per atom) and force errors over the test frames, the split, the frame counts and
    the molecule."""
    species = np.asarray(items.species)[0]
    return {
        **metrics.error_metrics(per_sample, metrics.num_atoms(items)),
        "split": config.data.split,
        "train_frames": config.data.train_frames,
        "test_frames": len(items.frame),
        "data": {"formula": data.formula(species), "num_atoms": len(species)},
    }


def features(items: data.EvaluationFrames, dataset: data.Dataset, config: MLFFConfig) -> dict:
    """Per test frame: time after the training pool, energy offset from the pool's mean, largest force."""
    traj, pool = dataset.trajectory, data.pool_and_test(dataset, config.data.split, config.data.test_fraction)[0]
    return metrics.frame_features(items, traj.time_index[pool].max(), traj.energy[pool].mean())


def make_task(task_id: str, config: MLFFConfig) -> Task:
    """The registry's factory."""
    found = {
        **studies.STUDIES,
        "equivariance": EQUIVARIANCE,
        "breakdown": generic.breakdown(),
        "correlation": generic.correlation(),
    }
    return Task(
        id=task_id,
        config=config,
        datacard=datacard(config),
        criteria=CRITERIA,
        generate=generate,
        fit=fit,
        load=lambda path, key, cfg: data.read_dataset(
            path,
            cfg.data.molecule,
            published=cfg.data.split == "published",
            check_units=cfg.data.check_units,
            check_energy_units=cfg.data.check_energy_units,
        ),
        save=lambda path, dataset, cfg: data.write_dataset(path, dataset, cfg.data.molecule),
        conditions=lambda key, dataset, cfg: data.evaluated_frames(
            dataset, cfg.data.split, cfg.data.test_fraction, cfg.data.test_frames
        ),
        prepare=lambda params, dataset, cfg: params.model,
        evaluate=evaluate,
        per_sample_metrics=metrics.per_frame_errors,
        score=lambda per_sample, outputs, items, key: score(per_sample, items, config),
        features=lambda items, dataset: features(items, dataset, config),
        summary=report.summary,
        report=report.sections,
        studies={name: found[name] for name in STUDIES},
        chunk_size=config.chunk_size,
        data_files=lambda path: [data.rmd17_file(path, config.data.molecule)],
        validate=checks.validate,
        check_data=checks.check_data,
        packages=PACKAGES,
        partial=False,  # a non-finite energy or force on any test frame means the model is broken
    )
