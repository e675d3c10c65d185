"""Figures of an ``mlff_aspirin-v0`` run: the trajectory and its split, training, test errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from jaxbench.studies.table import StudyResult  # noqa: E402

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


#: Colours of the error-tracing models (the same in every panel).
TRACE_COLOURS = {
    "window_narrow": "tab:blue",
    "window_wide": "tab:orange",
    "size_small": "tab:green",
    "size_large": "tab:red",
}


def error_tracing(arrays: dict[str, np.ndarray], models: dict[str, str]) -> Figure:
    """Signed energy error along test time for the window pair and the size pair, and per frame |energy error|
    vs force MAE of every model. ``arrays``: ``time_index`` (n,), ``<model>.energy_error_mev`` and
    ``<model>.force_mae_mev_per_a`` (n,); ``models``: ``{model id: label}`` (ids window_*, size_*)."""
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    time_index = np.asarray(arrays["time_index"])
    models = {name: models[name] for name in [*TRACE_COLOURS, *models] if name in models}  # narrow/small first
    for axis, kind in zip(ax[:2], ("window", "size")):
        for name, label in models.items():
            if name.startswith(kind):
                error = np.asarray(arrays[f"{name}.energy_error_mev"])
                axis.plot(time_index, error, ".-", ms=3, lw=0.7, color=TRACE_COLOURS.get(name), label=label)
        axis.axhline(0, color="grey", lw=0.6)
        axis.set(xlabel="time index (MD step)", ylabel="energy error (meV per molecule)")
        _legend_above(axis)
    for name, label in models.items():
        ax[2].scatter(
            arrays[f"{name}.force_mae_mev_per_a"],
            np.abs(arrays[f"{name}.energy_error_mev"]),
            s=8,
            alpha=0.6,
            color=TRACE_COLOURS.get(name),
            label=label,
        )
    ax[2].set(xlabel="force MAE of the frame (meV/Å)", ylabel="|energy error| (meV per molecule)")
    ax[2].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=2, frameon=False, borderaxespad=0.0)
    fig.tight_layout()
    return fig


def _size_axis(axis: plt.Axes, sizes: list[int]) -> None:
    """A log axis of training-set sizes with a tick at each size."""
    axis.set_xscale("log")
    axis.set_xticks(sizes, [str(n) for n in sizes])
    axis.minorticks_off()
    axis.set_xlabel("training frames (count)")


#: The size-study panels: (y label, metrics drawn in it; the per-species ones only with a single group).
SIZE_PANELS = (
    ("force MAE, per component (meV/Å)", ("force_mae_mev_per_a", "force_mae_H", "force_mae_C", "force_mae_O")),
    ("energy MAE (meV/atom)", ("energy_mae_mev_per_atom",)),
    ("energy MAE (meV per molecule)", ("energy_mae_mev",)),
)


def size_curves(result: StudyResult) -> Figure:
    """Test errors vs training-set size, mean ± std over seeds, one line per group (a variant) and, for a single
    group, per species in the force panel; from the rows of sample_efficiency or variant_study."""
    groups, sizes = result.groups(), sorted({int(r.x) for r in result.rows})
    fig, ax = plt.subplots(1, len(SIZE_PANELS), figsize=(4.2 * len(SIZE_PANELS), 3.6))
    for axis, (label, names) in zip(ax, SIZE_PANELS):
        for group in groups:
            for metric in names if len(groups) == 1 else names[:1]:
                rows = result.select(metric, group)
                if not rows:
                    continue
                xs = sorted({r.x for r in rows})
                values = [[r.value for r in rows if r.x == x] for x in xs]
                spread = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
                name = metric.removeprefix("force_mae_") if metric.startswith("force_mae_") else metric
                line = group if len(groups) > 1 else ("all atoms" if metric == names[0] else name)
                axis.errorbar(xs, [np.mean(v) for v in values], yerr=spread, marker="o", ms=3, capsize=2, label=line)
        _size_axis(axis, sizes)
        axis.set_ylabel(label)
        if len(axis.get_legend_handles_labels()[1]) > 1:
            _legend_above(axis)
    fig.tight_layout()
    return fig


#: The paired differences drawn by :func:`variant_differences`: metric -> y label.
DIFFERENCE_LABELS = {
    "force_mae_mev_per_a": "Δ force MAE (meV/Å)",
    "energy_mae_mev_per_atom": "Δ energy MAE (meV/atom)",
    "energy_mae_mev": "Δ energy MAE (meV per molecule)",
}


def variant_differences(summary: dict) -> Figure:
    """Each variant minus the reference vs training-set size, mean over seeds ± its standard error, from a
    variant_study summary (``difference_vs_reference[metric][variant]["n=<size>"]``)."""
    differences = summary.get("difference_vs_reference", {})
    shown = [m for m in DIFFERENCE_LABELS if m in differences]
    fig, ax = plt.subplots(1, max(len(shown), 1), figsize=(4 * max(len(shown), 1), 3.4), squeeze=False)
    for axis, metric in zip(ax[0], shown):
        for variant, by_size in differences[metric].items():
            sizes = [int(k.split("=", 1)[1]) for k in by_size]
            mean = [v["mean"] for v in by_size.values()]
            error = [v["error"] if v["error"] is not None else 0.0 for v in by_size.values()]
            label = f"{variant} − {summary.get('reference', 'reference')}"
            axis.errorbar(sizes, mean, yerr=error, marker="o", ms=3, capsize=2, label=label)
            _size_axis(axis, sorted(sizes))
        axis.axhline(0, color="grey", lw=0.6)
        axis.set_ylabel(DIFFERENCE_LABELS[metric])
        _legend_above(axis)
    fig.tight_layout()
    return fig
