"""``mlff_aspirin-v0``: NequIP trained on a time-ordered MD trajectory (GFN2-xTB generated, or rMD17),
tested on evenly spaced frames of its last part (or the published rMD17 test set); errors in meV, meV/Å."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxbench.config import check
from jaxbench.studies import analyses, generic
from jaxbench.task import Stage, Task

from . import data, md, metrics, nequip, report, studies, training
from .config import CRITERIA, STUDIES, DataConfig, MLFFConfig, datacard
from .equivariance import EQUIVARIANCE


class Params(NamedTuple):
    """The trained model, its training history and its training frames (indices into the trajectory)."""

    model: nequip.NequipParams
    history: training.TrainHistory
    train: np.ndarray


#: Distributions the task imports (their versions go into the manifest).
PACKAGES = ("e3nn-jax", "jraph", "flax", "optax", "orbax-checkpoint", "ase", "tblite", "matplotlib")


def validate(config: MLFFConfig, path: Path | None) -> None:
    """Refuses, before anything runs, a split the data source cannot give and frame counts it cannot hold."""
    frames = config.data
    if path is None:
        check(
            frames.split == "temporal",
            "data.split=published needs the rMD17 files: pass --data PATH (the rmd17/ folder with its splits/); "
            "generated data use data.split=temporal.",
        )
        n_test = max(1, round(frames.n_frames * frames.test_fraction))  # as data.temporal_split
        check_frames(
            frames, frames.n_frames - n_test, n_test, f"the {frames.n_frames} generated frames (data.n_frames)"
        )
        return
    data.rmd17_file(path, frames.molecule)  # DataFormatError naming what is missing
    if frames.split == "published":
        data.rmd17_splits_dir(path, 1)


def check_frames(frames: DataConfig, pool: int, test: int, source: str) -> None:
    """ConfigError naming the key when train_frames or test_frames exceed the pool or the test set."""
    test_set = "test window (data.test_fraction)" if frames.split == "temporal" else "published test set"
    check(
        frames.train_frames <= pool,
        f"data.train_frames={frames.train_frames} exceeds the {pool}-frame training pool of {source}; "
        f"set data.train_frames <= {pool}.",
    )
    check(
        frames.test_frames <= test,
        f"data.test_frames={frames.test_frames} exceeds the {test}-frame {test_set} of {source}; "
        f"set data.test_frames <= {test}.",
    )


def check_data(dataset: data.Dataset, config: MLFFConfig) -> None:
    """Refuses data that cannot train or test the configured model: too few frames, unknown species."""
    traj, frames = dataset.trajectory, config.data
    pool, test = data.pool_and_test(dataset, frames.split, frames.test_fraction)
    check_frames(frames, len(pool), len(test), f"the {traj.num_frames} frames of the data")
    unknown = sorted(set(np.unique(traj.species).tolist()) - set(config.model.species))
    check(
        not unknown,
        f"the data hold atomic numbers {unknown} that model.species={config.model.species} lacks; "
        f"set model.species={tuple(sorted({*config.model.species, *unknown}))}.",
    )
    windows, _ = analyses.time_windows(
        traj.num_frames, config.studies.window_starts, config.studies.window_widths, frames.test_fraction
    )
    smallest = min((len(p) for _, _, p in windows), default=config.training.batch_size)
    check(
        smallest >= config.training.batch_size,
        f"a time window of studies.window_widths={config.studies.window_widths} holds {smallest} of the "
        f"{traj.num_frames} frames, fewer than training.batch_size={config.training.batch_size}; "
        "use wider windows or a smaller batch.",
    )


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
            path, cfg.data.molecule, published=cfg.data.split == "published", check_units=cfg.data.check_units
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
        validate=validate,
        check_data=check_data,
        packages=PACKAGES,
        partial=False,  # a non-finite energy or force on any test frame means the model is broken
    )
