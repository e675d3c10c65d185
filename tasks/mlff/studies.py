"""Structural-interpretation studies of ``mlff_aspirin-v0``: where in time and data can NequIP be trusted?

* ``sample_efficiency`` — models trained on nested random subsets of the training pool (the
  seeds of one size as one ``vmap``-ed program), force/energy MAE per species vs size.
* ``time_window_grid`` — models trained on windows (start x width) of the trajectory, all on
  the same number of evenly spaced frames (the windows of one width train as one ``vmap``-ed
  program), tested on the final window; energy error along the test window per window.
* ``similarity`` — the SOAP similarity between each window's frames and the test window vs
  that window's test error: the trusted-range indicator for a new training set.
* ``equivariance`` — the trained model's energy under random rotations, translations and
  same-species permutations (invariant) and its forces (equivariant).
* ``breakdown`` — force errors per species; energy and force errors along the test window.
* ``correlation`` — per test frame: energy error vs force error, time since the training pool,
  distance of the frame's energy from the training mean, the largest force.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.runner import Run
from jaxbench.studies import StudyResult, analyses
from jaxbench.tasks.mlff import data as mlff_data

_EFFICIENCY, _WINDOWS = 21, 22
ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O"}


def _context(run: Run) -> dict:
    from jaxbench.tasks.mlff import task as mt

    traj = mt.get_data(run)
    split = mt.make_split(run, traj)
    return {"traj": traj, "split": split}


def _metrics(params, traj, idx) -> tuple[dict, np.ndarray]:
    from jaxbench.tasks.mlff import task as mt
    from jaxbench.tasks.mlff import training

    evaluation = training.evaluate(params, traj, idx)
    return mt.evaluation_metrics(evaluation, traj.species), evaluation.energy_error_mev


def _train_and_evaluate_many(run: Run, name: str, keys, traj, idx_stack: np.ndarray, eval_idx, steps=None):
    from jaxbench.tasks.mlff import task as mt
    from jaxbench.tasks.mlff import training

    params, _ = training.train_many(keys, traj, idx_stack, mt.model_config(run.config),
                                    checkpoint_dir=run.path("checkpoints", name), **mt.train_options(run.config, steps))
    return [_metrics(training.unstack(params, m), traj, eval_idx) for m in range(idx_stack.shape[0])]


# -- sample efficiency --------------------------------------------------------------------------
def sample_efficiency(run: Run) -> StudyResult:
    ctx = _context(run)
    traj, split = ctx["traj"], ctx["split"]
    pool = split["pool"]
    sizes = [int(n) for n in run.config["efficiency_sizes"] if int(n) <= pool.shape[0]]
    skipped = [int(n) for n in run.config["efficiency_sizes"] if int(n) > pool.shape[0]]
    if not sizes:
        sizes = [pool.shape[0]]

    def many(keys, idx):
        results = _train_and_evaluate_many(run, f"efficiency_n{idx.shape[1]}", keys, traj, pool[np.asarray(idx)],
                                           split["eval"])
        return {k: np.asarray([r[0][k] for r in results]) for k in results[0][0] if k != "frames"}

    result = analyses.sample_efficiency(None, pool.shape[0], sizes, range(int(run.config["efficiency_seeds"])),
                                        jax.random.fold_in(run.key, _EFFICIENCY), train_eval_many=many,
                                        stage=run.stage_hook("study.sample_efficiency"))
    return StudyResult(result.study, result.rows, {**result.summary, "skipped_sizes_beyond_pool": skipped,
                                                   "pool_frames": int(pool.shape[0])})


# -- time windows and similarity ------------------------------------------------------------------
def _windows(run: Run, traj) -> tuple[list, np.ndarray, np.ndarray]:
    order = np.argsort(traj.time_index, kind="stable")
    windows, test = analyses.time_windows(order.shape[0], run.config["window_starts"], run.config["window_widths"],
                                          float(run.config["test_fraction"]))
    return windows, test, order


def _window_frames(positions: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    return np.sort(order[mlff_data.evenly_spaced(positions, n)])


def window_results(run: Run) -> dict:
    """Trains every window model (one vmapped program per width) and evaluates it; staged per width."""
    ctx = _context(run)
    traj, split = ctx["traj"], ctx["split"]
    windows, _, order = _windows(run, traj)
    key = jax.random.fold_in(run.key, _WINDOWS)
    out = {}
    for width in sorted({w for _, w, _ in windows}):
        row = [(s, w, p) for s, w, p in windows if w == width]

        def train_row(row=row, width=width):
            n = min([int(run.config["window_frames"])] + [p.shape[0] for _, _, p in row])  # equal sizes: one vmap
            idx = np.stack([_window_frames(p, order, n) for _, _, p in row])
            keys = jnp.stack([jax.random.fold_in(key, int(round(s * 1000))) for s, _, _ in row])
            results = _train_and_evaluate_many(run, f"window_w{width:g}", keys, traj, idx, split["eval"])
            return {f"{s:g}": {"metrics": m, "energy_error_mev": e, "train_idx": i}
                    for (s, _, _), (m, e), i in zip(row, results, idx)}

        for start, values in run.stage(f"study.windows.w{width:g}", train_row).items():
            out[(float(start), float(width))] = values
    return out


def time_window_grid(run: Run) -> StudyResult:
    ctx = _context(run)
    traj = ctx["traj"]
    _, _, order = _windows(run, traj)
    results = window_results(run)

    test_start = int(round((1.0 - float(run.config["test_fraction"])) * order.shape[0]))

    def bounds(start, width):
        return int(round(start * order.shape[0])), min(int(round((start + width) * order.shape[0])), test_start)

    def train_eval(key, positions, test):
        del key, test  # trained and evaluated by window_results, one vmapped program per width
        (values,) = [v for (s, w), v in results.items() if bounds(s, w) == (positions[0], positions[-1] + 1)]
        return {k: float(v) for k, v in values["metrics"].items() if k != "frames"}

    result = analyses.time_window_grid(train_eval, order.shape[0], run.config["window_starts"],
                                       run.config["window_widths"], jax.random.fold_in(run.key, _WINDOWS),
                                       test_fraction=float(run.config["test_fraction"]),
                                       rank_by="force_mae_mev_per_a")
    arrays = {f"energy_error.[{s:g}, {s + w:g})": np.asarray(v["energy_error_mev"]) for (s, w), v in results.items()}
    arrays["eval_time_index"] = traj.time_index[ctx["split"]["eval"]]
    return StudyResult(result.study, result.rows, {**result.summary, "frames_per_window": int(run.config["window_frames"])},
                       arrays)


def soap_config(run: Run, species):
    from jaxbench.tasks.mlff.soap import SoapConfig

    return SoapConfig(r_cut=float(run.config["soap_r_cut"]), n_max=int(run.config["soap_n_max"]),
                      l_max=int(run.config["soap_l_max"]), species=tuple(sorted({int(z) for z in species})))


def similarity(run: Run) -> StudyResult:
    from jaxbench.tasks.mlff import soap

    ctx = _context(run)
    traj, split = ctx["traj"], ctx["split"]
    results = window_results(run)
    config = soap_config(run, traj.species)
    n = int(run.config["soap_frames"])

    def describe(idx):
        return np.asarray(soap.describe_frames(config, traj.species, traj.positions[idx]))

    def make():
        test = describe(mlff_data.evenly_spaced(split["eval"], min(n, split["eval"].shape[0])))
        sims = []
        for (s, w), v in sorted(results.items()):
            idx = np.asarray(v["train_idx"])
            frames = describe(mlff_data.evenly_spaced(idx, min(n, idx.shape[0])))
            sims.append(float(soap.window_similarity(frames, test, normalize=True)))
        return {"similarity": np.asarray(sims)}

    sims = run.stage("study.similarity.soap", make)["similarity"]
    keys = sorted(results)
    labels = [f"[{s:g}, {s + w:g})" for s, w in keys]
    force = np.asarray([results[k]["metrics"]["force_mae_mev_per_a"] for k in keys])
    energy = np.asarray([results[k]["metrics"]["energy_mae_mev"] for k in keys])
    target = float(run.config["trust_force_mae_factor"]) * float(force.min())
    result = analyses.similarity_trend(sims, {"force_mae_mev_per_a": force, "energy_mae_mev": energy}, labels,
                                       target={"force_mae_mev_per_a": (target, False)})
    summary = {**result.summary, "descriptor": f"average SOAP (r_cut {config.r_cut} Å, n_max {config.n_max}, "
               f"l_max {config.l_max}), kernel (p_a . p_b / |p_a||p_b|)^2 averaged over frame pairs, normalised by "
               "each window's self-similarity",
               "force_target": f"{run.config['trust_force_mae_factor']} x the best window's force MAE"}
    return StudyResult("similarity", result.rows, summary)


# -- equivariance -------------------------------------------------------------------------------
def equivariance(run: Run) -> StudyResult:
    from jaxbench.tasks.mlff import nequip
    from jaxbench.tasks.mlff import task as mt

    ctx = _context(run)
    traj, split = ctx["traj"], ctx["split"]
    params, _ = mt.trained_model(run, traj, split)
    frames = jnp.asarray(traj.positions[split["eval"][:4]], jnp.float32)

    def energy_forces(positions):
        # Without the per-species shifts: relative errors then compare with the learned part of E.
        return nequip.energy_and_forces(params, traj.species, positions, shifted=False)

    return analyses.equivariance_test(energy_forces, frames, traj.species, jax.random.fold_in(run.key, 23),
                                      n_trials=int(run.config["equivariance_trials"]))


# -- breakdown and correlation of the main model's test errors --------------------------------------
def _test_errors(run: Run) -> dict:
    from jaxbench import records

    return records.read_arrays(run.path("arrays", "test_errors"))


def breakdown(run: Run) -> StudyResult:
    ctx = _context(run)
    species = ctx["traj"].species
    errors = _test_errors(run)
    norms = errors["force_error_norm_mev"]  # (frames, atoms)
    present = [z for z in ELEMENTS if np.any(species == z)]
    atom_species = np.broadcast_to(np.searchsorted(present, species)[None, :], norms.shape).ravel()
    per_atom = analyses.per_sample_breakdown({"force_error_norm_mev": norms.ravel()},
                                             {"species": (atom_species, [ELEMENTS[z] for z in present], None)})
    time_bins, labels, centres = analyses.bin_feature(errors["time_index"], 5)
    per_frame = analyses.per_sample_breakdown(
        {"energy_abs_error_mev": np.abs(errors["energy_error_mev"]), "force_error_mean_mev": norms.mean(axis=1)},
        {"test_time": (time_bins, labels, centres)})
    return StudyResult("breakdown", per_atom.rows + per_frame.rows)


def correlation(run: Run) -> StudyResult:
    ctx = _context(run)
    traj, split = ctx["traj"], ctx["split"]
    errors = _test_errors(run)
    frames = errors["frame"]
    train_energy = traj.energy[split["train"]]
    pool_end = traj.time_index[split["pool"]].max()
    features = {
        "time_after_pool": (traj.time_index[frames] - pool_end).astype(float),
        "energy_offset_mev": 1e3 * np.abs(traj.energy[frames] - train_energy.mean()),
        "max_force_ev_per_a": np.linalg.norm(traj.forces[frames], axis=-1).max(axis=1),
        "force_error_mean_mev": errors["force_error_norm_mev"].mean(axis=1),
    }
    metrics = {"energy_abs_error_mev": np.abs(errors["energy_error_mev"]),
               "force_error_max_mev": errors["force_error_norm_mev"].max(axis=1)}
    return analyses.metric_correlation(metrics, features)


ADAPTERS = {
    "sample_efficiency": sample_efficiency,
    "time_window_grid": time_window_grid,
    "similarity": similarity,
    "equivariance": equivariance,
    "breakdown": breakdown,
    "correlation": correlation,
}
