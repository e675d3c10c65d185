"""Assembles the ``mlff_aspirin-v0`` Task: trajectory, NequIP model, temporal test window, metrics.

Pipeline (each step checkpointed, so ``--resume`` continues where it stopped):
  1. data: a GFN2-xTB Langevin trajectory from the embedded generator (cached on disk by its
     config and key) or an rMD17 npz file (``--data``);
  2. split: frames ordered by time; the last ``test_fraction`` is the test window (temporal
     split), or the published rMD17 split k=1 (``--set split=published``);
  3. training: NequIP on ``train_frames`` random frames of the training pool, orbax checkpoints;
  4. evaluation: per-frame energy errors and per-atom force errors on evenly spaced frames of
     the test window; MAE/RMSE overall and per species, in meV and meV/Å.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from jaxbench import records
from jaxbench.errors import ConfigError
from jaxbench.runner import Run
from jaxbench.task import Criterion, Task
from jaxbench.tasks.mlff import data as mlff_data
from jaxbench.tasks.mlff.data import Trajectory

CRITERIA = (
    Criterion("force_mae_mev_per_a", False, None,
              "mean absolute force-component error on the test window (meV/Å); NequIP (l=3) reaches "
              "~8 meV/Å on rMD17 aspirin with 1000 random training frames"),
    Criterion("energy_mae_mev", False, None, "mean absolute energy error per test frame (meV)"),
)

SPLITS = ("temporal", "published")


def datacard(config: dict) -> dict:
    from jaxbench.tasks.mlff import md

    card = md.datacard(_md_config(config), int(config["n_frames"]))
    return {
        "what": f"Time-ordered molecular-dynamics frames of {config['molecule']} with energies and forces.",
        "source": "embedded GFN2-xTB (tblite) Langevin MD, cached on disk; or rMD17 npz via --data "
        "(revised MD17, PBE/def2-SVP, kcal/mol converted to eV)",
        "generator": card,
        "units": "positions Å, energies eV, forces eV/Å; errors reported in meV and meV/Å",
        "split": "temporal: the last test_fraction of the trajectory is the test window; training frames "
        "come from the first part only",
    }


def _md_config(config: dict):
    from jaxbench.tasks.mlff.md import MDConfig

    return MDConfig(molecule=str(config["molecule"]), temperature_K=float(config["temperature_K"]),
                    save_every=int(config["save_every"]), equilibration_steps=int(config["equilibration_steps"]))


def validate_config(task_id: str, config: dict) -> None:
    if config["split"] not in SPLITS:
        raise ConfigError(f"{task_id}: split must be one of {SPLITS}, got {config['split']!r}.")
    if not 0.0 < float(config["test_fraction"]) < 0.5:
        raise ConfigError(f"{task_id}: test_fraction must be in (0, 0.5), got {config['test_fraction']}.")
    for key in ("n_frames", "test_frames", "train_frames", "steps", "batch_size", "channels", "layers",
                "radial_hidden", "checkpoint_every", "window_frames", "soap_frames"):
        if int(config[key]) < 1:
            raise ConfigError(f"{task_id}: {key} must be >= 1 (got {config[key]}).")
    if int(config["l_max"]) < 0 or not float(config["cutoff"]) > 0:
        raise ConfigError(f"{task_id}: l_max must be >= 0 and cutoff > 0 Å (got {config['l_max']}, {config['cutoff']}).")
    _md_config(config)  # molecule, temperature, stride


def model_config(config: dict):
    from jaxbench.tasks.mlff.nequip import NequipConfig

    return NequipConfig(l_max=int(config["l_max"]), channels=int(config["channels"]), layers=int(config["layers"]),
                        cutoff=float(config["cutoff"]), radial_hidden=int(config["radial_hidden"]))


def train_options(config: dict, steps: int | None = None) -> dict:
    return {"steps": int(steps or config["steps"]), "batch_size": int(config["batch_size"]),
            "learning_rate": float(config["learning_rate"]), "energy_weight": float(config["energy_weight"]),
            "force_weight": float(config["force_weight"]), "checkpoint_every": int(config["checkpoint_every"])}


# -- data -----------------------------------------------------------------------------------------
def generate_data(key: jax.Array, config: dict) -> Trajectory:
    """The embedded generator's trajectory (cached under $JAXBENCH_CACHE or ~/.cache/jaxbench)."""
    from jaxbench.tasks.mlff import md

    options = {k: v for k, v in vars(_md_config(config)).items() if k != "molecule"}
    return md.generate_trajectory(key, str(config["molecule"]), int(config["n_frames"]), cache=True, **options)


def load_data(path: str | Path, key: jax.Array, config: dict) -> Trajectory:
    """An rMD17 npz file (or the archive folder holding it)."""
    del key
    return mlff_data.load_rmd17(path, str(config["molecule"]))


def as_trajectory(d: dict) -> Trajectory:
    return Trajectory(*(np.asarray(d[name]) for name in Trajectory._fields))


def get_data(run: Run) -> Trajectory:
    key = jax.random.fold_in(run.key, 0)

    def make():
        traj = generate_data(key, run.config) if run.data_path is None else load_data(run.data_path, key, run.config)
        return traj._asdict()

    traj = as_trajectory(run.stage("data", make))
    run.data_checksums["trajectory"] = records.sha256_arrays(traj._asdict())
    if run.data_path is not None:
        npz = mlff_data.rmd17_file(run.data_path, str(run.config["molecule"]))
        run.data_checksums[str(npz)] = records.sha256_file(npz)
    return traj


def make_split(run: Run, traj: Trajectory) -> dict:
    """Indices: ``pool`` (training pool, time order), ``test`` (test window), ``train`` (the main
    model's frames), ``eval`` (evaluated test frames)."""
    config = run.config

    def make():
        if config["split"] == "published":
            if run.data_path is None:
                raise ConfigError("split=published needs the rMD17 files (--data PATH); generated data use "
                                  "split=temporal.")
            train, test = mlff_data.load_published_split(run.data_path, 1, n_frames=traj.num_frames, expected_size=None)
            pool = np.sort(train)
            train_idx = pool[: int(config["train_frames"])]
        else:
            pool, test = mlff_data.temporal_split(traj, float(config["test_fraction"]))
            n = int(config["train_frames"])
            if n > pool.shape[0]:
                raise ConfigError(f"train_frames={n} exceeds the {pool.shape[0]} frames of the training pool.")
            pick = np.asarray(jax.random.choice(jax.random.fold_in(run.key, 1), pool.shape[0], (n,), replace=False))
            train_idx = np.sort(pool[pick])
        eval_idx = mlff_data.evenly_spaced(test, min(int(config["test_frames"]), test.shape[0]))
        return {"pool": pool, "test": test, "train": train_idx, "eval": eval_idx}

    return run.stage("split", make)


# -- model ----------------------------------------------------------------------------------------
def trained_model(run: Run, traj: Trajectory, split: dict):
    """The main NequIP model (orbax checkpoints under checkpoints/main; resumes) and its history."""
    from jaxbench.tasks.mlff import training

    def make():
        start = time.perf_counter()
        params, history = training.train(jax.random.fold_in(run.key, 2), traj, split["train"],
                                         model_config(run.config), checkpoint_dir=run.path("checkpoints", "main"),
                                         **train_options(run.config))
        run.timings["training"] = time.perf_counter() - start
        run.log(f"[stage] training: {run.timings['training']:.1f} s")
        return params, history

    return run.cached("main_model", make)


def evaluation_metrics(evaluation, species) -> dict:
    from jaxbench.tasks.mlff import training

    summary = training.summarise(evaluation, species)
    per_species = training.force_mae_per_species(evaluation, species)
    return {**summary, **{f"force_mae_{z}": v for z, v in per_species.items()}}


def pipeline(run: Run) -> dict:
    from jaxbench.tasks.mlff import nequip, training
    from jaxbench.tasks.mlff import report as mlff_report

    traj = get_data(run)
    split = make_split(run, traj)
    params, history = trained_model(run, traj, split)
    evaluation = run.stage("evaluation", lambda: training.evaluate(params, traj, split["eval"])._asdict())
    evaluation = training.Evaluation(**{k: np.asarray(v) for k, v in evaluation.items()})
    metrics = evaluation_metrics(evaluation, traj.species)
    metrics.update({
        "train_frames": int(split["train"].shape[0]), "test_frames": int(split["eval"].shape[0]),
        "pool_frames": int(split["pool"].shape[0]), "test_window_frames": int(split["test"].shape[0]),
        "n_weights": int(nequip.num_weights(params)), "data": mlff_data.summarize(traj),
    })
    records.write_arrays(run.path("arrays", "test_errors"), {
        "frame": split["eval"], "time_index": traj.time_index[split["eval"]],
        "energy_error_mev": evaluation.energy_error_mev, "force_error_norm_mev": evaluation.force_error_norm_mev,
        "energy_ev": traj.energy[split["eval"]]})
    records.write_arrays(run.path("arrays", "training_history"), {k: np.asarray(v) for k, v in history._asdict().items()})
    records.write_arrays(run.path("arrays", "trajectory_trace"), {
        "time_index": traj.time_index, "energy_ev": traj.energy, "species": traj.species,
        "train": split["train"], "test": split["test"], "pool": split["pool"]})
    mlff_report.finish(run, metrics)
    return metrics


def per_sample_metrics(prediction: tuple, batch: dict) -> dict:
    """Per frame: |energy error| (meV); per atom: force error norm (meV/Å)."""
    energy, forces = prediction
    return {"energy_abs_error_mev": 1e3 * np.abs(np.asarray(energy) - batch["energy"]),
            "force_error_norm_mev": 1e3 * np.linalg.norm(np.asarray(forces) - batch["forces"], axis=-1)}


def make_task(task_id: str, config: dict) -> Task:
    from jaxbench.tasks.mlff import nequip, training
    from jaxbench.tasks.mlff import report as mlff_report
    from jaxbench.tasks.mlff.config import STUDIES
    from jaxbench.tasks.mlff.studies import ADAPTERS

    validate_config(task_id, config)

    def init(key, dataset):
        traj = dataset if isinstance(dataset, Trajectory) else as_trajectory(dataset)
        pool, _ = mlff_data.temporal_split(traj, float(config["test_fraction"]))
        return training.train(key, traj, pool[: int(config["train_frames"])], model_config(config),
                              **train_options(config))[0]

    def apply(params, batch, key=None):
        return nequip.energy_and_forces(params, batch["species"], batch["positions"])

    return Task(
        id=task_id,
        config=config,
        datacard=datacard(config),
        criteria=CRITERIA,
        generate=generate_data,
        load=load_data,
        init=init,
        apply=apply,
        per_sample_metrics=per_sample_metrics,
        pipeline=pipeline,
        report_sections=mlff_report.sections,
        studies={name: ADAPTERS[name] for name in STUDIES},
    )
