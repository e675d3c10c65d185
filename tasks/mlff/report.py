"""The summary table and report sections of an ``mlff_aspirin-v0`` run, from its in-memory results."""

from __future__ import annotations

from jaxbench.report import Figure, ReportSection, Table, figure_png
from jaxbench.task import RunView

from . import data, metrics, nequip, plots

LABELS = {
    "force_mae_mev_per_a": "force MAE (meV/Å)",
    "force_rmse_mev_per_a": "force RMSE (meV/Å)",
    "energy_mae_mev": "energy MAE (meV)",
    "energy_rmse_mev": "energy RMSE (meV)",
    **{f"force_mae_{z}": f"force MAE {z} (meV/Å)" for z in ("H", "C", "N", "O")},
    "train_frames": "training frames",
    "test_frames": "test frames",
}


def summary(scores: dict) -> Table:
    """Test-window errors (meV, meV/Å), overall and per species, and the frame counts."""
    return Table(
        "Test-window errors of the NequIP model",
        ("metric", "value"),
        tuple((label, scores[key]) for key, label in LABELS.items() if key in scores),
    )


def sections(view: RunView) -> list[ReportSection]:
    """The data and split, the trajectory, training and the errors along the test window."""
    traj, config, items = view.data.trajectory, view.config, view.items
    pool, test = data.pool_and_test(view.data, config.data.split, config.data.test_fraction)
    facts = Table(
        "Data, split and model",
        ("quantity", "value"),
        (
            ("molecule", f"{config.data.molecule} ({data.formula(traj.species)}, {traj.num_atoms} atoms)"),
            ("source", view.source),
            ("frames", traj.num_frames),
            ("training pool frames", len(pool)),
            ("test window frames", len(test)),
            ("evaluated test frames", len(items.frame)),
            ("model weights", nequip.num_weights(view.params.model)),
        ),
    )
    text = (
        "The model trains on frames of the first part of the trajectory and is tested on its last part (temporal "
        "split): the numbers measure extrapolation in time, not interpolation between neighbouring frames."
        if config.data.split == "temporal"
        else "The published rMD17 split k=1."
    )
    errors = plots.errors(
        items.time_index,
        metrics.energy_error_mev(view.outputs, items),
        metrics.force_error_mev(view.outputs, items),
        items.species[0],
    )
    panels = (
        (
            "Trajectory and split",
            "trajectory",
            "Energy along the trajectory, training frames and test window.",
            plots.trajectory(traj, view.params.train, test),
        ),
        ("Training", "training", "Loss and per-batch RMSE during training.", plots.training(view.params.history)),
        ("Errors", "errors", "Energy and force errors along the test window (left) and per species (right).", errors),
    )
    return [
        ReportSection("Data and split", text=text, tables=(facts,)),
        *(
            ReportSection(title, figures=(Figure(name, caption, figure_png(fig)),))
            for title, name, caption, fig in panels
        ),
    ]
