"""mlff_aspirin-v0 end to end through the CLI: generated data with every study, and rMD17 files."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxbench import records

# Ethanol (9 atoms) keeps the GFN2-xTB dynamics and the training short.
TINY = [
    "--quick", "--no-progress",
    "--set", "molecule=ethanol", "--set", "n_frames=240", "--set", "save_every=2", "--set", "equilibration_steps=100",
    "--set", "train_frames=40", "--set", "test_frames=16", "--set", "steps=60", "--set", "checkpoint_every=30",
    "--set", "efficiency_sizes=10,20,100000", "--set", "efficiency_seeds=2", "--set", "window_frames=10",
    "--set", "soap_frames=6", "--set", "soap_n_max=3", "--set", "soap_l_max=2", "--set", "equivariance_trials=2",
]


def jaxbench_cli(*args, cache, timeout=900):
    env = {**os.environ, "JAXBENCH_CACHE": str(cache), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    return subprocess.run([sys.executable, "-m", "jaxbench.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def studied_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlff")
    out = root / "run"
    result = jaxbench_cli("run", "mlff_aspirin-v0", *TINY, "--out", str(out), "--study", "all", cache=root / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout, root / "cache"


def test_run_reports_test_window_errors_in_mev(studied_run):
    out, stdout, cache = studied_run
    assert "force MAE (meV/Å)" in stdout
    metrics = records.read_json(out / "metrics.json")
    assert metrics["data"]["formula"] == "C2H6O" and metrics["train_frames"] == 40 and metrics["test_frames"] == 16
    assert {"force_mae_H", "force_mae_C", "force_mae_O"} <= set(metrics)
    errors = records.read_arrays(out / "arrays" / "test_errors")
    assert errors["force_error_norm_mev"].shape == (16, 9) and np.all(np.isfinite(errors["energy_error_mev"]))
    # Per-sample errors reproduce the reported MAE (the summary is a reduction of them).
    np.testing.assert_allclose(np.mean(np.abs(errors["energy_error_mev"])), metrics["energy_mae_mev"], rtol=1e-6)
    # Test frames come after every training frame (temporal split).
    trace = records.read_arrays(out / "arrays" / "trajectory_trace")
    assert trace["time_index"][trace["train"]].max() < errors["time_index"].min()
    assert any(cache.rglob("*.datacard.json"))  # the generated trajectory is cached
    manifest = records.read_json(out / "manifest.json")
    assert manifest["status"] == "complete" and "trajectory" in manifest["data_checksums"]


def test_every_study_is_written_and_reported(studied_run):
    out, _, _ = studied_run
    html = (out / "report.html").read_text()
    for name, title in (("sample_efficiency", "Sample efficiency"), ("time_window_grid", "Time-domain extrapolation"),
                        ("similarity", "Training-test similarity"), ("equivariance", "Equivariance test"),
                        ("breakdown", "Per-sample breakdown"), ("correlation", "Metric correlation")):
        assert (out / "studies" / name / "table.csv").exists(), name
        assert f"Study: {title}" in html
    efficiency = records.read_json(out / "studies" / "sample_efficiency" / "result.json")["summary"]
    assert efficiency["sizes"] == [10, 20] and efficiency["skipped_sizes_beyond_pool"] == [100000]
    windows = records.read_json(out / "studies" / "time_window_grid" / "result.json")["summary"]
    assert len(windows["ranking"]) == 5 and windows["ranked_by"] == "force_mae_mev_per_a"
    similarity = records.read_json(out / "studies" / "similarity" / "result.json")
    values = [row[2] for row in similarity["rows"]]  # x column: SOAP similarity of each window
    assert len(set(values)) > 1 and all(0.0 < v <= 1.0 + 1e-6 for v in values)
    equivariance = records.read_json(out / "studies" / "equivariance" / "result.json")["summary"]["max_errors"]
    assert equivariance["rotation"]["forces_rel"] < 1e-4 and equivariance["permutation"]["energy_rel"] < 1e-4


def test_rmd17_files_run_with_the_published_split(studied_run, tmp_path):
    from jaxbench.tasks.mlff.data import HARTREE_IN_EV, Trajectory, write_rmd17

    from jaxbench.records import load_pytree

    out, _, cache = studied_run
    data = load_pytree(out / "stages" / "data.npz")
    traj = Trajectory(*(np.asarray(data[name]) for name in Trajectory._fields))
    perm = np.random.default_rng(0).permutation(traj.num_frames)  # files need not be in time order
    # GFN2-xTB energies are valence-only; rMD17 holds DFT total energies, which the loader's unit
    # check expects near the summed free-atom energies (2 C + 6 H + O, Hartree). A constant shift
    # keeps the forces and the error metrics as they are.
    dft_like = (2 * -37.845 + 6 * -0.5 - 75.067) * HARTREE_IN_EV
    shift = dft_like - np.median(traj.energy)
    shuffled = traj._replace(positions=traj.positions[perm], energy=traj.energy[perm] + shift,
                             forces=traj.forces[perm], time_index=traj.time_index[perm])
    root = tmp_path / "rmd17"
    write_rmd17(root / "npz_data" / "rmd17_ethanol.npz", shuffled)
    splits = root / "splits"
    splits.mkdir()
    np.savetxt(splits / "index_train_01.csv", np.arange(0, 120), fmt="%d")
    np.savetxt(splits / "index_test_01.csv", np.arange(120, 240), fmt="%d")
    run = tmp_path / "run"
    result = jaxbench_cli("run", "mlff_aspirin-v0", *TINY, "--set", "split=published", "--data", str(root),
                          "--out", str(run), cache=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = records.read_json(run / "manifest.json")
    assert any(k.endswith("rmd17_ethanol.npz") for k in manifest["data_checksums"])
    errors = records.read_arrays(run / "arrays" / "test_errors")
    assert set(errors["frame"]) <= set(range(120, 240))
    # The file's frames, in eV again after the kcal/mol round trip.
    np.testing.assert_allclose(errors["energy_ev"], shuffled.energy[errors["frame"]], rtol=1e-12)


def test_bad_config_and_missing_split_files_are_named(tmp_path):
    result = jaxbench_cli("run", "mlff_aspirin-v0", "--set", "split=random", "--out", str(tmp_path / "r"),
                          cache=tmp_path)
    assert result.returncode == 2 and "split must be one of" in result.stderr and not (tmp_path / "r").exists()
    result = jaxbench_cli("run", "mlff_aspirin-v0", "--set", "molecule=benzene", "--out", str(tmp_path / "r"),
                          cache=tmp_path)
    assert result.returncode == 2 and "benzene" in result.stderr and not (tmp_path / "r").exists()
