"""top_tagging-v0 end to end through the CLI on generated jets with every study, then on files of both published
layouts; and the studies' science: the physics inputs are invariant under rotations about the beam axis."""

import jax
import numpy as np
import pytest

from jaxbench import records
from jaxbench.tasks.jets import topland

TINY = ["--preset", "tiny", "--no-progress"]


@pytest.fixture(scope="module")
def studied_run(tmp_path_factory, cached_cli):
    root = tmp_path_factory.mktemp("jets")
    out = root / "run"
    result = cached_cli("run", "top_tagging-v0", *TINY, "--out", str(out), "--study", "all", cache=root / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout, root


def test_run_scores_part_and_the_baseline_from_the_per_jet_outputs(studied_run):
    out, stdout, _ = studied_run
    assert "Particle Transformer" in stdout and "baseline: mass + τ3/τ2" in stdout
    metrics = records.read_json(out / "metrics.json")
    outputs = records.read_arrays(out / "arrays" / "outputs")
    items = records.read_arrays(out / "arrays" / "items")
    per_sample = records.read_arrays(out / "arrays" / "per_sample")
    label = items["label"]
    assert metrics["test_jets"] == len(label) == 32 and 0 < metrics["signal_fraction"] < 1
    # The reported accuracy and AUC are those of the stored scores (an independent rank-sum AUC).
    assert metrics["accuracy"] == pytest.approx(np.mean((outputs["score"] > 0.5) == (label == 1)), abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(per_sample["correct"].mean(), abs=1e-6)
    ranks = np.argsort(np.argsort(outputs["score"], kind="stable")) + 1.0
    n1, n0 = np.sum(label == 1), np.sum(label == 0)
    mann_whitney = (ranks[label == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    assert metrics["auc"] == pytest.approx(mann_whitney, abs=1e-5)  # (ties are rare with float scores)
    for name in ("auc", "rejection_at_30", "accuracy"):
        assert np.isfinite(metrics[name]) and np.isfinite(metrics["baseline"][name])
        if not metrics.get(f"{name}_is_lower_bound"):  # a bound (no background left) has no bootstrap error
            assert metrics[f"{name}_error"] >= 0
    # The baseline's observables: top jets are heavier than QCD jets on average.
    assert np.median(outputs["mass_gev"][label == 1]) > np.median(outputs["mass_gev"][label == 0])
    manifest = records.read_json(out / "manifest.json")
    assert manifest["status"] == "complete" and "pythia8mc" in manifest["environment"]["packages"]


def test_every_study_is_written_and_reported(studied_run):
    out, _, _ = studied_run
    html = (out / "report.html").read_text()
    for name, title in (
        ("sample_efficiency", "Sample efficiency"),
        ("variants", "Variants (ablation)"),
        ("rotation_scan", "Rotational invariance"),
        ("jet_energy", "Out-of-distribution jet energy"),
        ("correlation", "Metric correlation"),
        ("breakdown", "Per-sample breakdown"),
    ):
        assert (out / "studies" / name / "table.csv").exists(), name
        assert f"Study: {title}" in html
    efficiency = records.read_json(out / "studies" / "sample_efficiency" / "result.json")["summary"]
    assert efficiency["sizes"] == [12, 48] and efficiency["steps"] == 6
    variants = records.read_json(out / "studies" / "variants" / "result.json")["summary"]
    assert variants["variants"] == ["physics", "raw"] and "n=12" in variants["difference_vs_reference"]["auc"]["raw"]
    energy = records.read_json(out / "studies" / "jet_energy" / "result.json")
    assert len(energy["summary"]["test_support"]) == 2 and min(energy["summary"]["test_support"]) >= 6
    groups = {row[0] for row in energy["rows"]}
    assert len(groups) == 2  # nested training ranges [bin 0] and [bins 0-1], every one tested on every bin


def test_physics_inputs_are_invariant_under_beam_rotations_and_raw_inputs_are_not(studied_run):
    """The method's rotation test: physics-input AUC is flat to float32 rounding; raw-input scores move."""
    out, _, _ = studied_run
    rotation = records.read_json(out / "studies" / "rotation_scan" / "result.json")["summary"]["delta"]
    for name, entry in rotation.items():
        if name.startswith("physics"):
            assert entry["auc"]["delta"] <= 1e-6, (name, entry)
    from jaxbench.tasks.jets import features

    p4 = records.load_pytree(out / "stages" / "data.npz").test.p4
    x0, mask0 = features.particle_features(p4, p4.shape[1])
    x1, mask1 = features.particle_features(features.rotate_about_beam(p4, 1.1), p4.shape[1])
    np.testing.assert_array_equal(mask0, mask1)
    np.testing.assert_allclose(np.asarray(x1), np.asarray(x0), atol=2e-4)
    raw0 = features.raw_features(p4, p4.shape[1])[0]
    raw1 = features.raw_features(features.rotate_about_beam(p4, 1.1), p4.shape[1])[0]
    assert np.max(np.abs(np.asarray(raw1) - np.asarray(raw0))) > 0.1


def test_published_files_of_either_layout_load_as_the_jets_written(studied_run):
    """The generated jets written as TopLandscape h5 tables or as the ParT parquet conversion load back (parquet
    without truth and ttv, which that layout lacks); the h5 files are what the runner hashes."""
    import jaxbench

    out, _, root = studied_run
    data = records.load_pytree(out / "stages" / "data.npz")._replace(energy_test=None)
    task = jaxbench.make("top_tagging-v0", "tiny")
    for layout in ("h5", "parquet"):
        written = topland.write_dataset(root / layout, data, layout=layout)
        assert task.data_files(root / layout) == written
        loaded = task.load(root / layout, jax.random.key(0), task.config)
        assert loaded.energy_test is None
        for split, want in zip(loaded[:3], data[:3]):
            np.testing.assert_allclose(split.p4, want.p4, rtol=1e-6)
            np.testing.assert_array_equal(split.label, want.label)
            if layout == "h5":
                np.testing.assert_array_equal(split.ttv, want.ttv)
                np.testing.assert_array_equal(split.truth_p4, want.truth_p4)
            else:
                assert np.all(split.ttv == -1) and np.all(split.truth_p4 == 0)


def test_a_folder_without_either_layout_is_one_line_naming_both(tmp_path, cached_cli):
    (tmp_path / "notes.txt").write_text("no jets here")
    result = cached_cli(
        "run", "top_tagging-v0", *TINY, "--data", str(tmp_path), "--out", str(tmp_path / "r"), cache=tmp_path / "cache"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "train.h5" in line and "train_file.parquet" in line and str(tmp_path) in line


def test_the_training_step_compiles_once_for_every_size(tmp_path):
    """Training sets of several sizes padded to one width share one program; a resumed run ends identically."""
    from jaxbench.tasks.jets import part, training
    from jaxbench.tasks.jets.config import TINY as CONFIG

    rng = np.random.default_rng(0)
    p4 = np.zeros((20, 8, 4), np.float32)
    pt = rng.uniform(5, 50, (20, 8))
    phi, eta = rng.normal(0, 0.3, (20, 8)), rng.normal(0, 0.3, (20, 8))
    p4[..., 1], p4[..., 2], p4[..., 3] = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    p4[..., 0] = pt * np.cosh(eta)
    labels = np.arange(20) % 2
    config = part.PartConfig(
        embed_dims=(8, 8),
        pair_embed_dims=(4,),
        num_heads=2,
        num_particle_blocks=1,
        num_class_blocks=1,
        max_particles=8,
        dropout=0.0,
    )
    settings = CONFIG.training
    keys = jax.random.split(jax.random.key(0), 2)
    subsets = [np.arange(3), np.arange(20)]
    whole, history = training.train_many(keys, p4, labels, subsets, config, "physics", settings, width=20)
    resumed_dir = tmp_path / "ckpt"

    class Stop(Exception):
        pass

    def stop(step, history):  # the first chunk is checkpointed, then the run "dies"
        raise Stop

    with pytest.raises(Stop):
        training.train_many(
            keys, p4, labels, subsets, config, "physics", settings, width=20, checkpoint_dir=resumed_dir, callback=stop
        )
    again, _ = training.train_many(
        keys, p4, labels, subsets, config, "physics", settings, width=20, checkpoint_dir=resumed_dir
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7), whole, again
    )
    assert history.loss.shape == (2, settings.steps) and np.all(np.isfinite(history.loss))
