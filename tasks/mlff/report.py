"""The summary table and report sections of an ``mlff_aspirin-v0`` run, from its in-memory results."""

from __future__ import annotations

from jaxbench.report import Figure, ReportSection, Table, figure_png
from jaxbench.task import RunView

from . import data, metrics, nequip, plots
from .config import MLFFConfig

LABELS = {
    "force_mae_mev_per_a": "force MAE, per component (meV/Å)",
    "force_rmse_mev_per_a": "force RMSE, per component (meV/Å)",
    "energy_mae_mev": "energy MAE, per molecule (meV)",
    "energy_mae_mev_per_atom": "energy MAE, per atom (meV/atom)",
    "energy_rmse_mev": "energy RMSE, per molecule (meV)",
    **{f"force_mae_{z}": f"force MAE of {z} atoms, per component (meV/Å)" for z in ("H", "C", "N", "O")},
    "train_frames": "training frames",
    "test_frames": "test frames",
}
TEST_SET = {"temporal": "the test window (last part in time)", "published": "the published rMD17 test set"}

UNITS = (
    "Energy errors are of the molecule's total energy per frame, predicted minus reference, in meV per molecule; "
    "the energy MAE and RMSE are their mean absolute and root-mean-square values over the test frames, and the "
    "per-atom MAE (meV/atom, as the method's paper reports it) divides the MAE by the molecule's atom count. "
    "Force errors are per Cartesian component, in meV/Å: the force MAE is the mean of |ΔF| and the RMSE "
    "the root of the mean of ΔF² over the x, y and z components of every atom of every test frame; the per-species "
    "MAE takes the mean over the atoms of one element. The error figures also show |force error| per atom, the "
    "length of an atom's 3-component error vector (meV/Å), which is larger than a component error."
)


def summary(scores: dict) -> Table:
    """Test errors (meV per molecule, meV/Å per force component), overall and per species, and the frame counts."""
    where = TEST_SET.get(scores.get("split", ""), "the test frames")
    return Table(
        f"Errors of the NequIP model on {where}",
        ("metric", "value"),
        tuple((label, scores[key]) for key, label in LABELS.items() if key in scores),
    )


def split_text(config: MLFFConfig, pool: int, test: int) -> str:
    """What the split is and what its errors measure, in one paragraph."""
    frames = config.data
    if frames.split == "temporal":
        return (
            f"Temporal split: the frames are ordered by time; the last {frames.test_fraction:.0%} ({test} frames) is "
            f"the test window and the model trains on {frames.train_frames} random frames of the {pool} before it. "
            f"{frames.test_frames} evenly spaced test-window frames are evaluated. The numbers measure extrapolation "
            "forward in time, not interpolation between neighbouring, correlated frames, so expect them above "
            "random-split numbers from the literature."
        )
    return (
        f"Published rMD17 split k=1 (splits/index_train_01.csv, index_test_01.csv): the model trains on the "
        f"{frames.train_frames} published training frames with the lowest indices (of {pool}) and is evaluated "
        f"on {frames.test_frames} evenly spaced frames of the {test} published test frames. These are "
        "random frames of the trajectory, so the numbers measure interpolation and compare with the literature "
        "(NequIP l=3: ~8 meV/Å force MAE on aspirin with 1000 frames)."
    )


def source_text(view: RunView) -> str:
    """Where the frames came from: the embedded generator with its settings, or the data path."""
    config = view.config
    if view.source == "generated":
        md = config.md
        return (
            f"Data source: generated — {config.data.n_frames} frames of {config.data.molecule} from the embedded "
            f"{md.method} (tblite) Langevin MD at {md.temperature_K:g} K, one frame saved every {md.save_every} steps "
            f"of {md.timestep_fs:g} fs after {md.equilibration_steps} equilibration steps (energies eV, forces eV/Å)."
        )
    return (
        f"Data source: {view.source} — rMD17 npz ({config.data.molecule}), energies and forces converted from "
        "kcal/mol and kcal/mol/Å to eV and eV/Å"
        + (
            "; unit checks were off (data.check_units=false)."
            if not config.data.check_units
            else "; the total-energy unit check was off (data.check_energy_units=false)."
            if not config.data.check_energy_units
            else "."
        )
    )


def sections(view: RunView) -> list[ReportSection]:
    """What the numbers mean (split, units, data source), the trajectory, training and the test errors."""
    traj, config, items = view.data.trajectory, view.config, view.items
    pool, test = data.pool_and_test(view.data, config.data.split, config.data.test_fraction)
    facts = Table(
        "Data, split and model",
        ("quantity", "value"),
        (
            ("molecule", f"{config.data.molecule} ({data.formula(traj.species)}, {traj.num_atoms} atoms)"),
            ("source", view.source),
            ("split", config.data.split),
            ("frames", traj.num_frames),
            ("training pool frames", len(pool)),
            ("test frames" if config.data.split == "published" else "test window frames", len(test)),
            ("evaluated test frames", len(items.frame)),
            ("model weights", nequip.num_weights(view.params.model)),
        ),
    )
    text = "\n\n".join((split_text(config, len(pool), len(test)), UNITS, source_text(view)))
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
            "Energy along the trajectory (meV per molecule from its mean), the training frames and the test frames.",
            plots.trajectory(traj, view.params.train, test),
        ),
        (
            "Training",
            "training",
            "Weighted training loss, force-component RMSE (meV/Å) and per-atom energy RMSE (meV/atom) on each batch.",
            plots.training(view.params.history),
        ),
        (
            "Errors",
            "errors",
            "Along the evaluated test frames: energy error (meV per molecule) and the mean per-atom force-error "
            "norm (meV/Å); right: per-atom force-error norms per species (boxes: quartiles, whiskers 1.5 IQR).",
            errors,
        ),
    )
    return [
        ReportSection("What the numbers mean", text=text, tables=(facts,)),
        *(
            ReportSection(title, figures=(Figure(name, caption, figure_png(fig)),))
            for title, name, caption, fig in panels
        ),
    ]
