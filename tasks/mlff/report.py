"""The summary table and report sections of an ``mlff_aspirin-v0`` run, from its in-memory results."""

from __future__ import annotations

from jaxbench.report import Figure, ReportSection, Table, figure_png
from jaxbench.task import RunView

from . import data, metrics, nequip, plots


def summary(scores: dict) -> Table:
    """Test-window errors (meV, meV/Å), overall and per species, and the frame counts."""
    species = [z for z in ("H", "C", "N", "O") if f"force_mae_{z}" in scores]
    return Table("Test-window errors of the NequIP model", ("metric", "value"), (
        ("force MAE (meV/Å)", scores["force_mae_mev_per_a"]), ("force RMSE (meV/Å)", scores["force_rmse_mev_per_a"]),
        ("energy MAE (meV)", scores["energy_mae_mev"]), ("energy RMSE (meV)", scores["energy_rmse_mev"]),
        *((f"force MAE {z} (meV/Å)", scores[f"force_mae_{z}"]) for z in species),
        ("training frames", scores["train_frames"]), ("test frames", scores["test_frames"])))


def sections(view: RunView) -> list[ReportSection]:
    """The data and split, the trajectory, training and the errors along the test window."""
    traj, config, items = view.data.trajectory, view.config, view.items
    pool, test = data.pool_and_test(view.data, config.data.split, config.data.test_fraction)
    facts = Table("Data, split and model", ("quantity", "value"), (
        ("molecule", f"{config.data.molecule} ({data.formula(traj.species)}, {traj.num_atoms} atoms)"),
        ("source", view.source), ("frames", traj.num_frames), ("training pool frames", pool.shape[0]),
        ("test window frames", test.shape[0]), ("evaluated test frames", items.frame.shape[0]),
        ("model weights", nequip.num_weights(view.params.model))))
    text = ("The model trains on frames of the first part of the trajectory and is tested on its last part "
            "(temporal split), so the numbers measure extrapolation in time, not interpolation between "
            "neighbouring frames." if config.data.split == "temporal" else "Published rMD17 split k=1.")
    errors = plots.errors(items.time_index, metrics.energy_error_mev(view.outputs, items),
                          metrics.force_error_mev(view.outputs, items), items.species[0])
    return [
        ReportSection("Data and split", text=text, tables=(facts,)),
        ReportSection("Trajectory and split", figures=(Figure(
            "trajectory", "Energy along the trajectory; training frames and the test window.",
            figure_png(plots.trajectory(traj, view.params.train, test))),)),
        ReportSection("Training", figures=(Figure("training", "Loss and per-batch RMSE during training.",
                                                  figure_png(plots.training(view.params.history))),)),
        ReportSection("Errors", figures=(Figure("errors", "Energy and force errors along the test window (left) "
                                                "and per species (right).", figure_png(errors)),)),
    ]
