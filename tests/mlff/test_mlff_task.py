"""mlff_aspirin-v0 end to end through the CLI: generated data with every study, and rMD17 files."""

import numpy as np
import pytest

from jaxbench import records, studies

# Ethanol (9 atoms) keeps the GFN2-xTB dynamics and the training short.
TINY = ["--preset", "tiny", "--no-progress"]


@pytest.fixture(scope="module")
def studied_run(tmp_path_factory, cached_cli):
    root = tmp_path_factory.mktemp("mlff")
    out = root / "run"
    result = cached_cli("run", "mlff_aspirin-v0", *TINY, "--out", str(out), "--study", "all", cache=root / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout, root / "cache"


def test_run_reports_test_window_errors_in_mev(studied_run):
    out, stdout, cache = studied_run
    assert "force MAE, per component (meV/Å)" in stdout and "on the test window" in stdout
    metrics = records.read_json(out / "metrics.json")
    assert metrics["data"]["formula"] == "C2H6O" and metrics["train_frames"] == 40 and metrics["test_frames"] == 16
    assert {"force_mae_H", "force_mae_C", "force_mae_O"} <= set(metrics)
    per_frame = records.read_arrays(out / "arrays" / "per_sample")
    items = records.read_arrays(out / "arrays" / "items")
    outputs = records.read_arrays(out / "arrays" / "outputs")
    assert outputs["forces"].shape == items["forces"].shape == (16, 9, 3)
    assert np.all(np.isfinite(per_frame["energy_abs_error_mev"]))
    # Per-frame errors reproduce the reported MAEs (the scores are reductions of them).
    np.testing.assert_allclose(np.mean(per_frame["energy_abs_error_mev"]), metrics["energy_mae_mev"], rtol=1e-6)
    force_error = 1e3 * (outputs["forces"].astype(np.float64) - items["forces"])
    np.testing.assert_allclose(np.mean(np.abs(force_error)), metrics["force_mae_mev_per_a"], rtol=1e-6)
    hydrogens = items["species"][0] == 1
    np.testing.assert_allclose(np.mean(np.abs(force_error[:, hydrogens])), metrics["force_mae_H"], rtol=1e-6)
    # Test frames come after every training frame (temporal split).
    traj = records.load_pytree(out / "stages" / "data.npz").trajectory
    train = records.load_pytree(out / "stages" / "fit.split.npz")
    assert train.shape == (40,) and traj.time_index[train].max() < items["time_index"].min()
    assert any(cache.rglob("*.datacard.json"))  # the generated trajectory is cached
    manifest = records.read_json(out / "manifest.json")
    assert manifest["status"] == "complete" and manifest["preset"] == "tiny" and "data" in manifest["data_checksums"]


def test_every_study_is_written_and_reported(studied_run):
    out, _, _ = studied_run
    html = (out / "report.html").read_text()
    for name, title in (
        ("sample_efficiency", "Sample efficiency"),
        ("time_window_grid", "Time-domain extrapolation"),
        ("similarity", "Training-test similarity"),
        ("error_tracing", "Error tracing"),
        ("variants", "Variants (ablation)"),
        ("equivariance", "Equivariance test"),
        ("breakdown", "Per-sample breakdown"),
        ("correlation", "Metric correlation"),
    ):
        assert (out / "studies" / name / "table.csv").exists(), name
        assert f"Study: {title}" in html
    assert "What the numbers mean" in html and "Data source: generated" in html and "meV per molecule" in html
    efficiency = records.read_json(out / "studies" / "sample_efficiency" / "result.json")["summary"]
    assert efficiency["sizes"] == [10, 20] and efficiency["skipped_sizes_beyond_pool"] == [100000]
    windows = records.read_json(out / "studies" / "time_window_grid" / "result.json")["summary"]
    assert len(windows["ranking"]) == 5 and windows["ranked_by"] == "force_mae_mev_per_a"
    similarity = records.read_json(out / "studies" / "similarity" / "result.json")
    values = [row[2] for row in similarity["rows"]]  # x column: SOAP similarity of each window
    assert len(set(values)) > 1 and all(0.0 < v <= 1.0 + 1e-6 for v in values)
    equivariance = records.read_json(out / "studies" / "equivariance" / "result.json")["summary"]["max_errors"]
    assert equivariance["rotation"]["forces_rel"] < 1e-4 and equivariance["permutation"]["energy_rel"] < 1e-4
    # The per-species force errors are per-frame metrics, so the generic breakdown groups them too.
    breakdown = (out / "studies" / "breakdown" / "table.csv").read_text()
    assert "force_mae_H" in breakdown and "time_after_pool" in breakdown


def test_per_atom_energy_mae_is_the_molecule_mae_over_its_atoms(studied_run):
    out, _, _ = studied_run
    metrics = records.read_json(out / "metrics.json")  # ethanol: 9 atoms in every frame
    assert metrics["energy_mae_mev_per_atom"] == pytest.approx(metrics["energy_mae_mev"] / 9, rel=1e-12)
    efficiency = studies.load(out / "studies" / "sample_efficiency")
    per_molecule = efficiency.column("value", "energy_mae_mev")
    np.testing.assert_allclose(efficiency.column("value", "energy_mae_mev_per_atom"), per_molecule / 9, rtol=1e-12)


def test_error_tracing_signs_are_prediction_minus_reference_of_the_studies_models(studied_run):
    out, _, _ = studied_run
    tracing = studies.load(out / "studies" / "error_tracing")
    arrays, items = tracing.arrays, records.read_arrays(out / "arrays" / "items")
    order = np.argsort(items["time_index"], kind="stable")
    np.testing.assert_array_equal(arrays["time_index"], items["time_index"][order])
    np.testing.assert_array_equal(arrays["energy_reference_ev"], items["energy"][order])
    models = tracing.summary["models"]
    # tiny: windows of widths 0.3 and 0.6 (10 frames each), sizes 10 and 20 (100000 is beyond the pool)
    assert models == {
        "window_narrow": "window [0, 0.3) (10 frames)",
        "window_wide": "window [0, 0.6) (10 frames)",
        "size_small": "n=10 (whole pool, seed 0)",
        "size_large": "n=20 (whole pool, seed 0)",
    }
    assert len(tracing.rows) == 4 * 16 * 2  # models x test frames x (signed energy error, force MAE)
    grid = studies.load(out / "studies" / "time_window_grid")
    efficiency = studies.load(out / "studies" / "sample_efficiency")
    for name, label in models.items():
        signed = arrays[f"{name}.energy_error_mev"]
        np.testing.assert_allclose(
            signed, 1e3 * (arrays[f"{name}.energy_predicted_ev"] - arrays["energy_reference_ev"])
        )
        # The same models the other studies report: their energy and force MAEs come back from the traces.
        if name.startswith("window"):
            reported = {r.metric: r.value for r in grid.rows if label.startswith(f"window {r.slice} ")}
        else:
            size = int(label.split()[0].removeprefix("n="))
            reported = {r.metric: r.value for r in efficiency.rows if r.x == size and r.seed == 0}
        assert np.mean(np.abs(signed)) == pytest.approx(reported["energy_mae_mev"], rel=1e-9)
        force = arrays[f"{name}.force_mae_mev_per_a"]
        assert np.mean(force) == pytest.approx(reported["force_mae_mev_per_a"], rel=1e-9)
        summary = tracing.summary[label]
        assert summary["energy_bias_mev"] == pytest.approx(np.mean(signed))
        assert summary["energy_mae_mev_per_atom"] == pytest.approx(reported["energy_mae_mev"] / 9)
        assert abs(summary["largest_error_mev"]) == pytest.approx(np.max(np.abs(signed)))
        assert summary["first_frame_error_mev"] == pytest.approx(signed[0])
        rows = [r for r in tracing.rows if r.slice == label and r.metric == "energy_error_mev"]
        np.testing.assert_allclose([r.value for r in rows], signed)
        np.testing.assert_array_equal([r.x for r in rows], arrays["time_index"])


def test_energy_only_loss_is_paired_with_the_run_loss_and_leaves_the_forces_unfitted(studied_run):
    out, _, _ = studied_run
    variants = studies.load(out / "studies" / "variants")
    summary = variants.summary
    assert summary["variants"] == ["energy_and_forces", "energy_only"] and summary["reference"] == "energy_and_forces"
    by_variant = {
        g: {(r.x, r.seed, r.metric): r.value for r in variants.rows if r.group == g} for g in summary["variants"]
    }
    reference, energy_only = by_variant["energy_and_forces"], by_variant["energy_only"]
    assert set(reference) == set(energy_only) and {(x, s) for x, s, _ in reference} == {
        (x, s) for x in (10.0, 20.0) for s in (0, 1)
    }
    # The reference is the run's loss on the shared size units: exactly sample_efficiency's models.
    efficiency = studies.load(out / "studies" / "sample_efficiency")
    assert reference == {(r.x, r.seed, r.metric): r.value for r in efficiency.rows}
    differences = summary["difference_vs_reference"]["force_mae_mev_per_a"]["energy_only"]
    for size in (10.0, 20.0):
        paired = [
            energy_only[(size, s, "force_mae_mev_per_a")] - reference[(size, s, "force_mae_mev_per_a")] for s in (0, 1)
        ]
        assert differences[f"n={size:g}"]["mean"] == pytest.approx(np.mean(paired))
    # Without the force term nothing fits the forces: worse for every seed at the largest size, well beyond the
    # seeds' spread (about +430 ± 20 meV/Å on tiny).
    assert min(paired) > 0 and differences["n=20"]["mean"] > 3 * differences["n=20"]["error"]
    assert set(summary["delta_energy_only_minus_energy_and_forces"]) == {
        "force_mae_mev_per_a",
        "energy_mae_mev_per_atom",
        "energy_mae_mev",
    }


def test_report_is_rebuilt_from_the_checkpoints_alone(studied_run, cached_cli):
    out, _, cache = studied_run
    (out / "report.html").unlink()
    result = cached_cli("report", str(out), cache=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Study: Equivariance test" in (out / "report.html").read_text()


def test_rmd17_files_run_with_the_published_split(studied_run, tmp_path, cached_cli):
    from jaxbench.tasks.mlff.data import HARTREE_IN_EV, write_rmd17

    out, _, cache = studied_run
    traj = records.load_pytree(out / "stages" / "data.npz").trajectory
    perm = np.random.default_rng(0).permutation(traj.num_frames)  # files need not be in time order
    # GFN2-xTB energies are valence-only; rMD17 holds DFT total energies, which the loader's unit
    # check expects near the summed free-atom energies (2 C + 6 H + O, Hartree). A constant shift
    # keeps the forces and the error metrics as they are.
    dft_like = (2 * -37.845 + 6 * -0.5 - 75.067) * HARTREE_IN_EV
    shift = dft_like - np.median(traj.energy)
    shuffled = traj._replace(
        positions=traj.positions[perm],
        energy=traj.energy[perm] + shift,
        forces=traj.forces[perm],
        time_index=traj.time_index[perm],
    )
    root = tmp_path / "rmd17"
    write_rmd17(root / "npz_data" / "rmd17_ethanol.npz", shuffled)
    splits = root / "splits"
    splits.mkdir()
    np.savetxt(splits / "index_train_01.csv", np.arange(0, 120), fmt="%d")
    np.savetxt(splits / "index_test_01.csv", np.arange(120, 240), fmt="%d")
    run = tmp_path / "run"
    result = cached_cli(
        "run",
        "mlff_aspirin-v0",
        *TINY,
        "--set",
        "data.split=published",
        "--set",
        "data.check_energy_units=true",  # the file's energies are shifted to DFT-like totals
        "--data",
        str(root),
        "--out",
        str(run),
        cache=cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = records.read_json(run / "manifest.json")
    assert any(k.endswith("rmd17_ethanol.npz") for k in manifest["data_checksums"])
    assert manifest["environment"]["packages"]["tblite"] and manifest["environment"]["packages"]["e3nn-jax"]
    html = (run / "report.html").read_text()
    assert f"Data source: {root}" in html and "Published rMD17 split k=1" in html
    items = records.read_arrays(run / "arrays" / "items")
    assert set(items["frame"]) <= set(range(120, 240))
    # The file's frames, in eV again after the kcal/mol round trip.
    np.testing.assert_allclose(items["energy"], shuffled.energy[items["frame"]], rtol=1e-12)


def test_bad_config_and_a_published_split_without_files_are_named(tmp_path, cached_cli):
    for setting, named in (
        ("split=random", "split must be one of"),
        ("molecule=benzene", "benzene"),
        ("data.split=published", "--data PATH"),
    ):
        result = cached_cli(
            "run", "mlff_aspirin-v0", "--preset", "tiny", "--set", setting, "--out", str(tmp_path / "r"), cache=tmp_path
        )
        assert result.returncode == 2 and named in result.stderr, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
