"""Figures of an ``mlff_aspirin-v0`` run: the trajectory and its split, training, test errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .data import Trajectory  # noqa: E402
from .training import TrainHistory, element_symbol  # noqa: E402


def _legend_above(ax: plt.Axes) -> None:
    """The legend in a row above the axes, never over the data."""
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=3, frameon=False, borderaxespad=0.0)


def trajectory(traj: Trajectory, train: np.ndarray, test: np.ndarray) -> Figure:
    """Energy along the trajectory (meV from its mean) with the training frames and the test window."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    order = np.argsort(traj.time_index)
    mean = traj.energy.mean()
    ax.plot(traj.time_index[order], (traj.energy[order] - mean) * 1e3, lw=0.6, color="grey", label="trajectory")
    ax.plot(
        traj.time_index[train], (traj.energy[train] - mean) * 1e3, ".", ms=3, color="tab:blue", label="training frames"
    )
    rank = np.argsort(order)[test]  # positions of the test frames in time order
    if rank.max() - rank.min() + 1 == len(test):  # a window in time (temporal split)
        first, last = traj.time_index[test].min(), traj.time_index[test].max()
        ax.axvspan(first, last, color="tab:red", alpha=0.15, label="test window")
    else:  # frames spread over the trajectory (published split)
        ax.plot(
            traj.time_index[test], (traj.energy[test] - mean) * 1e3, "x", ms=3, color="tab:red", label="test frames"
        )
    ax.set(xlabel="time index (MD step)", ylabel="E − mean E (meV per molecule)")
    _legend_above(ax)
    fig.tight_layout()
    return fig


def training(history: TrainHistory) -> Figure:
    """Training loss, and the per-batch force-component and per-atom energy RMSE, against the optimizer step."""
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.2))
    steps = np.arange(1, np.shape(history.loss)[-1] + 1)
    panels = (
        (history.loss, "weighted loss", "loss (dimensionless)"),
        (np.sqrt(history.force_mse) * 1e3, "force components, on the batch", "force RMSE (meV/Å)"),
        (np.sqrt(history.energy_mse) * 1e3, "energy per atom, on the batch", "energy RMSE (meV/atom)"),
    )
    for axis, (values, title, label) in zip(ax, panels):
        axis.semilogy(steps, values, lw=0.8)
        axis.set(title=title, xlabel="optimizer step (count)", ylabel=label)
        axis.title.set_fontsize(9)
    fig.tight_layout()
    return fig


def errors(
    time_index: np.ndarray, energy_error_mev: np.ndarray, force_error_mev: np.ndarray, species: np.ndarray
) -> Figure:
    """Along the test frames: energy error (meV per molecule) and the mean per-atom force-error norm (meV/Å);
    per species: the per-atom force-error norms. Shapes: (n,), (n,), (n, N, 3) meV/Å, (N,)."""
    norms = np.linalg.norm(force_error_mev, axis=-1)
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ax[0].plot(time_index, energy_error_mev, ".-", ms=3, lw=0.6)
    ax[0].axhline(0, color="grey", lw=0.6)
    ax[0].set(
        title="energy, predicted − reference", xlabel="time index (MD step)", ylabel="energy error (meV per molecule)"
    )
    ax[1].plot(time_index, norms.mean(axis=1), ".-", ms=3, lw=0.6, color="tab:orange")
    ax[1].set(title="force-error norm, mean over atoms", xlabel="time index (MD step)", ylabel="|force error| (meV/Å)")
    present = sorted(set(np.asarray(species).tolist()) - {0})
    ax[2].boxplot([norms[:, species == z].ravel() for z in present], showfliers=False)
    ax[2].set_xticks(range(1, len(present) + 1), [element_symbol(z) for z in present])
    ax[2].set(title="force-error norm per atom, by species", xlabel="species", ylabel="|force error| (meV/Å)")
    for axis in ax:
        axis.title.set_fontsize(9)
    fig.tight_layout()
    return fig
