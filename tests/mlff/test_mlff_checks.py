"""mlff_aspirin-v0 refuses runs that cannot work before doing any, and its report says what the numbers are."""

from __future__ import annotations

import re

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest

from jaxbench import registry, runner
from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.task import RunView
from jaxbench.tasks.mlff import data, metrics, nequip, plots, report, training
from jaxbench.tasks.mlff.config import TINY
from jaxbench.tasks.mlff.geometries import starting_geometry
from jaxbench.tasks.mlff.task import Params

TASK = "mlff_aspirin-v0"


def fake_trajectory(n_frames: int = 240, seed: int = 0) -> data.Trajectory:
    """Ethanol frames with rMD17-like labels: total energies near the DFT value (eV), forces ~1.3 eV/Å."""
    rng = np.random.default_rng(seed)
    species, start = starting_geometry("ethanol")
    dft_like = (2 * -37.845 + 6 * -0.5 - 75.067) * data.HARTREE_IN_EV
    return data.Trajectory(
        species=species.astype(np.int32),
        positions=start[None] + 0.02 * rng.standard_normal((n_frames, *start.shape)),
        energy=dft_like + 0.2 * rng.standard_normal(n_frames),
        forces=1.3 * rng.standard_normal((n_frames, *start.shape)),
        time_index=2 * np.arange(n_frames, dtype=np.int64),
    )


def run(tmp_path, data_path=None, **overrides):
    """Executes the tiny preset with ``overrides`` in ``tmp_path/run``; returns the run directory."""
    out = tmp_path / "run"
    runner.execute(registry.make(TASK, "tiny", **overrides), out, data=data_path, progress=False, log=lambda s: None)
    return out


# -- refused before any work -------------------------------------------------------------------------
def test_published_split_without_data_is_refused_before_the_run_directory_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"data.split=published needs the rMD17 files: pass --data PATH"):
        run(tmp_path, **{"data.split": "published"})
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_train_frames_beyond_the_generated_pool_are_refused_before_generating(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXBENCH_CACHE", str(tmp_path / "cache"))
    # tiny: 240 frames, the last 24 are the test window, so the pool holds 216
    with pytest.raises(ConfigError, match=r"data.train_frames=217 exceeds the 216-frame training pool.*<= 216"):
        run(tmp_path, **{"data.train_frames": 217})
    with pytest.raises(ConfigError, match=r"data.test_frames=25 exceeds the 24-frame test window"):
        run(tmp_path, **{"data.test_frames": 25})
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_too_few_loaded_frames_are_refused_after_loading_and_before_training(tmp_path):
    root = tmp_path / "rmd17"
    data.write_rmd17(root / "npz_data" / "rmd17_ethanol.npz", fake_trajectory(40))
    # 40 frames: test window 4, pool 36 < train_frames 40 (tiny)
    with pytest.raises(ConfigError, match=r"data.train_frames=40 exceeds the 36-frame training pool of the 40 frames"):
        run(tmp_path, root, **{"data.test_frames": 4})
    assert not (tmp_path / "run").exists()  # checked before the data stage is saved: nothing left behind


def test_published_split_files_are_required_before_loading(tmp_path):
    root = tmp_path / "rmd17"
    data.write_rmd17(root / "npz_data" / "rmd17_ethanol.npz", fake_trajectory(40))
    with pytest.raises(DataFormatError, match=r"no rMD17 split file index_train_01.csv"):
        run(tmp_path, root, **{"data.split": "published"})
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("training.learning_rate", float("nan"), "training.learning_rate must be a finite number > 0; got nan"),
        ("training.learning_rate", float("inf"), "training.learning_rate must be a finite number > 0; got inf"),
        ("training.force_weight", -1.0, "training.force_weight must be a finite number >= 0; got -1.0"),
        ("training.final_learning_fraction", 1.5, "training.final_learning_fraction must be a finite number >= 0"),
        ("model.cutoff", 0.0, "model.cutoff must be a finite number > 0; got 0.0"),
        ("md.temperature_K", float("nan"), "md.temperature_K must be a finite number > 0; got nan"),
        ("soap.sigma", -0.5, "soap.sigma must be a finite number > 0"),
        ("data.test_fraction", float("nan"), "data.test_fraction must be a number in"),
        ("data.train_frames", 3, "data.train_frames=3 is smaller than training.batch_size=5"),
        ("studies.trust_force_mae_factor", float("nan"), "studies.trust_force_mae_factor must be a finite number"),
    ],
)
def test_bad_hyperparameters_are_refused_in_one_line_naming_the_key(key, value, message):
    with pytest.raises(ConfigError) as error:
        registry.make(TASK, "tiny", **{key: value})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_both_loss_weights_zero_is_refused():
    with pytest.raises(ConfigError, match="both 0"):
        registry.make(TASK, "tiny", **{"training.energy_weight": 0.0, "training.force_weight": 0.0})


def test_the_task_records_the_versions_of_what_it_imports():
    task = registry.make(TASK, "tiny")
    assert {"e3nn-jax", "jraph", "flax", "ase", "tblite"} <= set(task.packages) and task.partial is False


# -- the report ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def view():
    """A RunView of an untrained tiny model on fake ethanol frames (no MD, no training)."""
    config, traj = TINY, fake_trajectory()
    dataset = data.Dataset(traj)
    pool, _ = data.pool_and_test(dataset, "temporal", config.data.test_fraction)
    train = pool[:: len(pool) // config.data.train_frames][: config.data.train_frames]
    model = nequip.init(jax.random.key(0), config.model, traj.species, traj.positions[train])
    steps = config.training.steps
    history = training.TrainHistory(*(np.geomspace(1.0, 0.01, steps).astype(np.float32) for _ in range(3)))
    items = data.evaluated_frames(dataset, "temporal", config.data.test_fraction, config.data.test_frames)
    outputs = nequip.predict(model, items.species, items.positions)
    return RunView(config, "generated", dataset, Params(model, history, train), items, outputs, {}, {}, {}, None)


def test_the_report_opens_with_the_split_the_units_and_the_data_source(view, tmp_path):
    sections = report.sections(view)
    first = sections[0]
    assert first.title == "What the numbers mean"
    assert "Temporal split" in first.text and "extrapolation" in first.text
    assert "meV per molecule" in first.text and "per Cartesian component" in first.text and "meV/Å" in first.text
    assert "Data source: generated" in first.text and "GFN2-xTB" in first.text
    rows = dict(first.tables[0].rows)
    assert rows["source"] == "generated" and rows["split"] == "temporal"

    published = view.config.__class__(data=view.config.data.__class__(split="published", molecule="ethanol"))
    text = report.split_text(published, 1000, 1000) + report.source_text(
        RunView(published, str(tmp_path / "rmd17"), *[None] * 8)
    )
    assert "Published rMD17 split k=1" in text and f"Data source: {tmp_path / 'rmd17'}" in text
    assert "kcal/mol" in text


def test_the_summary_names_the_test_set_and_the_units():
    table = report.summary({"split": "temporal", "force_mae_mev_per_a": 1.0, "energy_mae_mev": 2.0})
    assert "test window" in table.caption
    assert [label for label, _ in table.rows] == ["force MAE, per component (meV/Å)", "energy MAE, per molecule (meV)"]
    assert "published rMD17 test set" in report.summary({"split": "published"}).caption


UNIT = re.compile(r"\((meV|MD step|count|dimensionless|meV/Å|meV/atom|meV per molecule)\)$")


@pytest.mark.parametrize("name", ["trajectory", "training", "errors"])
def test_every_axis_has_its_quantity_and_unit_and_no_legend_covers_data(view, name):
    traj, params, items = view.data.trajectory, view.params, view.items
    test = data.pool_and_test(view.data, "temporal", 0.1)[1]
    figure = {
        "trajectory": lambda: plots.trajectory(traj, params.train, test),
        "training": lambda: plots.training(params.history),
        "errors": lambda: plots.errors(
            items.time_index,
            metrics.energy_error_mev(view.outputs, items),
            metrics.force_error_mev(view.outputs, items),
            items.species[0],
        ),
    }[name]()
    figure.canvas.draw()
    for ax in figure.axes:
        categorical = all(t.get_text().isalpha() for t in ax.get_xticklabels() if t.get_text())
        assert UNIT.search(ax.get_ylabel()), (name, ax.get_ylabel())
        assert UNIT.search(ax.get_xlabel()) or (categorical and ax.get_xlabel() == "species"), (name, ax.get_xlabel())
        legend = ax.get_legend()
        if legend is not None:
            assert not legend.get_window_extent().overlaps(ax.get_window_extent()), name
    plt.close(figure)


def test_a_published_split_marks_its_test_frames_instead_of_a_window(view):
    traj = view.data.trajectory
    rng = np.random.default_rng(1)
    test = np.sort(rng.choice(traj.num_frames, 30, replace=False))
    figure = plots.trajectory(traj, view.params.train, test)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "test frames" in labels and not figure.axes[0].patches
    plt.close(figure)
