"""Plots and tables of an ``mlff_aspirin-v0`` run, rebuilt from the run directory's arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxbench import records
from jaxbench.report import Figure, ReportSection, Table, figure_png, render_table_text

ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O"}


def score_table(metrics: dict) -> Table:
    rows = [
        ("force MAE (meV/Å)", metrics["force_mae_mev_per_a"]),
        ("force RMSE (meV/Å)", metrics["force_rmse_mev_per_a"]),
        ("energy MAE (meV)", metrics["energy_mae_mev"]),
        ("energy RMSE (meV)", metrics["energy_rmse_mev"]),
        *((f"force MAE {z} (meV/Å)", metrics[f"force_mae_{z}"]) for z in ("H", "C", "N", "O")
          if f"force_mae_{z}" in metrics),
        ("training frames", metrics["train_frames"]),
        ("test frames (of the test window)", f"{metrics['test_frames']} of {metrics['test_window_frames']}"),
        ("model weights", metrics["n_weights"]),
    ]
    return Table("Test-window errors of the NequIP model", ("metric", "value"), tuple(rows))


def finish(run, metrics: dict) -> None:
    """Writes summary.txt (the runner writes report.html)."""
    records.atomic_write_text(run.path("summary.txt"), render_table_text(score_table(metrics)))


def sections(run_dir: str | Path, metrics: dict | None = None) -> list[ReportSection]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics = metrics if metrics is not None else records.read_json(run_dir / "metrics.json")
    errors = records.read_arrays(run_dir / "arrays" / "test_errors")
    history = records.read_arrays(run_dir / "arrays" / "training_history")
    trace = records.read_arrays(run_dir / "arrays" / "trajectory_trace")
    species = trace["species"]

    # The trajectory: energy vs time, training frames and the test window marked.
    fig_traj, ax = plt.subplots(figsize=(7, 3.2))
    order = np.argsort(trace["time_index"])
    t, e = trace["time_index"][order], trace["energy_ev"][order]
    ax.plot(t, (e - e.mean()) * 1e3, lw=0.6, color="grey", label="trajectory")
    ax.plot(trace["time_index"][trace["train"]], (trace["energy_ev"][trace["train"]] - e.mean()) * 1e3, ".",
            ms=3, color="tab:blue", label="training frames")
    test_t = trace["time_index"][trace["test"]]
    ax.axvspan(test_t.min(), test_t.max(), color="tab:red", alpha=0.15, label="test window")
    ax.set(xlabel="time index (MD step)", ylabel="E − mean (meV)")
    ax.legend(fontsize=7)
    fig_traj.tight_layout()

    # Training curve.
    fig_hist, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = np.arange(1, history["loss"].shape[-1] + 1)
    ax[0].semilogy(steps, history["loss"], lw=0.8)
    ax[0].set(xlabel="step", ylabel="training loss")
    ax[1].semilogy(steps, np.sqrt(history["force_mse"]) * 1e3, lw=0.8, label="force RMSE (meV/Å)")
    ax[1].semilogy(steps, np.sqrt(history["energy_mse"]) * 1e3, lw=0.8, label="energy RMSE per atom (meV)")
    ax[1].set(xlabel="step")
    ax[1].legend(fontsize=7)
    fig_hist.tight_layout()

    # Errors along the test window and per species.
    fig_err, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    ax[0].plot(errors["time_index"], errors["energy_error_mev"], ".-", ms=3, lw=0.6, label="energy error (meV)")
    ax[0].plot(errors["time_index"], errors["force_error_norm_mev"].mean(axis=1), ".-", ms=3, lw=0.6,
               label="mean |force error| (meV/Å)")
    ax[0].axhline(0, color="grey", lw=0.6)
    ax[0].set(xlabel="time index in the test window")
    ax[0].legend(fontsize=7)
    present = [z for z in ELEMENTS if np.any(species == z)]
    ax[1].boxplot([errors["force_error_norm_mev"][:, species == z].ravel() for z in present], showfliers=False)
    ax[1].set_xticks(range(1, len(present) + 1), [ELEMENTS[z] for z in present])
    ax[1].set(ylabel="|force error| per atom (meV/Å)")
    fig_err.tight_layout()

    data = metrics.get("data", {})
    text = (f"{data.get('formula', '')}: {data.get('num_frames', '')} frames. The model trains on frames of the "
            "first part of the trajectory and is tested on its last part (temporal split), so the numbers "
            "measure extrapolation in time, not interpolation between neighbouring frames.")
    return [
        ReportSection("Scores", text=text, tables=(score_table(metrics),)),
        ReportSection("Trajectory and split", figures=(
            Figure("trajectory", "Energy along the trajectory; training frames and the test window.",
                   figure_png(fig_traj)),)),
        ReportSection("Training", figures=(Figure("training", "Loss and per-batch RMSE during training.",
                                                  figure_png(fig_hist)),)),
        ReportSection("Errors", figures=(Figure("errors", "Energy and force errors along the test window (left) "
                                                "and per species (right).", figure_png(fig_err)),)),
    ]
