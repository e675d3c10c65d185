"""Figures of an ``mlff_aspirin-v0`` run: the trajectory and its split, training, test errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .data import Trajectory  # noqa: E402
from .training import TrainHistory, element_symbol  # noqa: E402


def trajectory(traj: Trajectory, train: np.ndarray, test: np.ndarray) -> Figure:
    """Energy along the trajectory (meV from its mean) with the training frames and the test window."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    order = np.argsort(traj.time_index)
    mean = traj.energy.mean()
    ax.plot(traj.time_index[order], (traj.energy[order] - mean) * 1e3, lw=0.6, color="grey", label="trajectory")
    ax.plot(
        traj.time_index[train], (traj.energy[train] - mean) * 1e3, ".", ms=3, color="tab:blue", label="training frames"
    )
    ax.axvspan(
        traj.time_index[test].min(), traj.time_index[test].max(), color="tab:red", alpha=0.15, label="test window"
    )
    ax.set(xlabel="time index (MD step)", ylabel="E − mean E (meV)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def training(history: TrainHistory) -> Figure:
    """Training loss and the per-batch force and per-atom energy RMSE against the optimizer step."""
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = np.arange(1, np.shape(history.loss)[-1] + 1)
    ax[0].semilogy(steps, history.loss, lw=0.8)
    ax[0].set(xlabel="optimizer step", ylabel="training loss (dimensionless)")
    ax[1].semilogy(steps, np.sqrt(history.force_mse) * 1e3, lw=0.8, label="force RMSE (meV/Å)")
    ax[1].semilogy(steps, np.sqrt(history.energy_mse) * 1e3, lw=0.8, label="energy RMSE per atom (meV)")
    ax[1].set(xlabel="optimizer step", ylabel="RMSE on the batch (meV/Å, meV)")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def errors(
    time_index: np.ndarray, energy_error_mev: np.ndarray, force_error_mev: np.ndarray, species: np.ndarray
) -> Figure:
    """Left: energy error and mean |force error| per frame along the test window; right: per-atom
    |force error| per species. Shapes: (n,), (n,), (n, N, 3) meV/Å, (N,)."""
    norms = np.linalg.norm(force_error_mev, axis=-1)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    ax[0].plot(time_index, energy_error_mev, ".-", ms=3, lw=0.6, label="energy error (meV)")
    ax[0].plot(time_index, norms.mean(axis=1), ".-", ms=3, lw=0.6, label="mean |force error| (meV/Å)")
    ax[0].axhline(0, color="grey", lw=0.6)
    ax[0].set(xlabel="time index (MD step)", ylabel="error (meV, meV/Å)")
    ax[0].legend(fontsize=7)
    present = sorted(set(np.asarray(species).tolist()) - {0})
    ax[1].boxplot([norms[:, species == z].ravel() for z in present], showfliers=False)
    ax[1].set_xticks(range(1, len(present) + 1), [element_symbol(z) for z in present])
    ax[1].set(xlabel="species", ylabel="|force error| per atom (meV/Å)")
    fig.tight_layout()
    return fig
