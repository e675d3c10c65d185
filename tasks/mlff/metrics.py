"""Per-frame errors of a force field on labelled frames, their aggregation, and frame descriptors.

Per sample first: every metric is one value per test frame (host, float64); the task's scores
are named reductions of them. Each frame has the same atoms, so the mean of the per-frame force
MAEs is the force-component MAE over all frames, and likewise per species and for the MSE; the
per-atom energy MAE (meV/atom, as the method's paper reports it) is the per-molecule MAE over the
molecule's atom count.
"""

from __future__ import annotations

import numpy as np

from .data import EvaluationFrames
from .graph import PADDING_SPECIES
from .nequip import Prediction
from .training import element_symbol


def predicted_energy_ev(prediction: Prediction) -> np.ndarray:
    """The model's total energy per frame (n,) in eV: the learned part plus the per-species shifts, in float64."""
    return np.asarray(prediction.energy, np.float64) + np.asarray(prediction.atom_shift, np.float64).sum(-1)


def energy_error_mev(prediction: Prediction, frames: EvaluationFrames) -> np.ndarray:
    """Predicted minus reference energy per frame (n,) in meV (signed)."""
    return 1e3 * (predicted_energy_ev(prediction) - np.asarray(frames.energy))


def num_atoms(frames: EvaluationFrames) -> int:
    """Real (non-padding) atoms per frame; every frame holds the same molecule."""
    return int(np.sum(np.asarray(frames.species)[0] != PADDING_SPECIES))


def force_error_mev(prediction: Prediction, frames: EvaluationFrames) -> np.ndarray:
    """Predicted minus reference forces (n, N, 3) in meV/Å."""
    return 1e3 * (np.asarray(prediction.forces, np.float64) - np.asarray(frames.forces))


def per_frame_errors(prediction: Prediction, frames: EvaluationFrames) -> dict[str, np.ndarray]:
    """Per frame (n,): |energy error| (meV), force-component MAE and MSE over real atoms (meV/Å,
    (meV/Å)²), the largest per-atom force error (meV/Å) and the force MAE of each species present."""
    species = np.asarray(frames.species)[0]
    error = force_error_mev(prediction, frames)
    real = error[:, species != PADDING_SPECIES]
    out = {
        "energy_abs_error_mev": np.abs(energy_error_mev(prediction, frames)),
        "force_mae_mev_per_a": np.abs(real).mean(axis=(1, 2)),
        "force_mse_mev2_per_a2": (real**2).mean(axis=(1, 2)),
        "force_error_max_mev_per_a": np.linalg.norm(real, axis=-1).max(axis=1),
    }
    for z in sorted(set(species.tolist()) - {PADDING_SPECIES}):
        out[f"force_mae_{element_symbol(z)}"] = np.abs(error[:, species == z]).mean(axis=(1, 2))
    return out


def error_metrics(per_frame: dict[str, np.ndarray], atoms: int) -> dict[str, float]:
    """Energy MAE/RMSE per molecule (meV), energy MAE per atom (meV/atom: over the molecule's ``atoms``),
    force-component MAE/RMSE (meV/Å) and per-species force MAE over frames."""
    energy = np.asarray(per_frame["energy_abs_error_mev"])
    out = {
        "energy_mae_mev": float(energy.mean()),
        "energy_mae_mev_per_atom": float(energy.mean()) / atoms,
        "energy_rmse_mev": float(np.sqrt(np.mean(energy**2))),
        "force_mae_mev_per_a": float(np.mean(per_frame["force_mae_mev_per_a"])),
        "force_rmse_mev_per_a": float(np.sqrt(np.mean(per_frame["force_mse_mev2_per_a2"]))),
    }
    species = [k for k in per_frame if k.startswith("force_mae_") and k != "force_mae_mev_per_a"]
    return out | {k: float(np.mean(per_frame[k])) for k in species}


def frame_features(frames: EvaluationFrames, pool_end: float, pool_energy_ev: float) -> dict[str, np.ndarray]:
    """Per frame (n,): MD steps after the training pool's last frame, |E - the pool's mean E| (meV)
    and the largest reference force (eV/Å)."""
    return {
        "time_after_pool": np.asarray(frames.time_index, float) - float(pool_end),
        "energy_offset_mev": 1e3 * np.abs(np.asarray(frames.energy) - pool_energy_ev),
        "max_force_ev_per_a": np.linalg.norm(np.asarray(frames.forces), axis=-1).max(axis=1),
    }
