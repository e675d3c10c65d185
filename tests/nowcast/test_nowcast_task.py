"""nowcast-v0 end to end through the CLI on generated events with every study, then on NowcastNet case folders; the
scores are the stored per-event counts' aggregates, and the recorded verification settings define them."""

import numpy as np
import pytest

from jaxbench import records
from jaxbench.studies import table

TINY = ["--preset", "tiny", "--no-progress"]
FORECASTERS = ("model", "persistence", "extrapolation", "sprog", "steps")


@pytest.fixture(scope="module")
def studied_run(tmp_path_factory, cached_cli):
    root = tmp_path_factory.mktemp("nowcast")
    out = root / "run"
    result = cached_cli("run", "nowcast-v0", *TINY, "--out", str(out), "--study", "all", cache=root / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout, root


def test_pooled_csi_is_the_sum_of_the_per_event_counts_for_every_forecaster(studied_run):
    out, stdout, _ = studied_run
    metrics = records.read_json(out / "metrics.json")
    per_sample = records.read_arrays(out / "arrays" / "per_sample")
    assert metrics["settings"]["forecasters"] == list(FORECASTERS)
    assert metrics["settings"]["operator"] == ">=" and metrics["settings"]["nan_policy"] == "no_event"
    lead = metrics["settings"]["lead_times_min"].index(60.0)
    for name in FORECASTERS:
        scores, prefix = (metrics, "") if name == "model" else (metrics[name], f"{name}.")
        hits, misses, fa = (per_sample[f"{prefix}{c}_16"][:, lead].sum() for c in ("hits", "misses", "false_alarms"))
        expected = hits / (hits + misses + fa) if hits + misses + fa else None
        assert scores["csi_16_60min"] == (pytest.approx(expected, abs=1e-6) if expected is not None else None), name
        assert per_sample[f"{prefix}mae"].shape == (10, 6) and np.all(per_sample[f"{prefix}mae"] >= 0)
    assert all(0 <= metrics[name]["fallback_events"] <= 10 for name in FORECASTERS[1:])  # recorded per baseline
    # the model's motion is compared with the generator's true motion; persistence has none
    assert "motion_epe" in per_sample and "persistence.motion_epe" not in per_sample
    assert "extrapolation.motion_epe" in per_sample
    gain = metrics["csi_16_gain_over_persistence_30min"]
    assert gain is None or gain == pytest.approx(metrics["csi_16_30min"] - metrics["persistence"]["csi_16_30min"])
    assert "CSI 16 @30 min" in stdout and "persistence" in stdout


def test_every_study_is_written_and_reported(studied_run):
    out, _, _ = studied_run
    html = (out / "report.html").read_text()
    titles = {
        "frame_slices": "Time-frame slices",
        "cumulative_csi": "Cumulative CSI (CuCSI)",
        "active_area": "Raw vs active-area MAE",
        "center_of_mass": "Centre-of-mass displacement",
        "differential_trend": "Differential trend",
        "stability": "Prediction stability",
        "correlations": "Metric correlations",
        "baselines": "The model against the pysteps baselines",
        "motion": "Motion field against the truth",
        "power_spectrum": "Power spectra: does the forecast keep the texture of the rain?",
    }
    for name, title in titles.items():
        assert (out / "studies" / name / "table.csv").exists(), name
        assert f"Study: {title}" in html, title
    frames = records.read_json(out / "studies" / "frame_slices" / "result.json")
    assert sorted({row[2] for row in frames["rows"]}) == [60.0, 120.0, 180.0]  # the x of every row: 1, 2, 3 h


def test_cucsi_keeps_only_events_with_a_contingency_at_every_lead(studied_run):
    out, _, _ = studied_run
    per_sample = records.read_arrays(out / "arrays" / "per_sample")
    summary = records.read_json(out / "studies" / "cumulative_csi" / "result.json")["summary"]
    for t in ("16", "32", "64"):
        selected = int(np.all(np.isfinite(per_sample[f"csi_{t}"]), axis=1).sum())
        assert summary["thresholds"][t]["selected_samples"] == selected


def test_stability_spreads_come_from_the_noise_alone(studied_run):
    out, _, _ = studied_run
    arrays = table.load(out / "studies" / "stability").arrays
    mae = arrays["mae"]  # (events, keys, leads)
    assert mae.shape == (2, 4, 6) and np.all(np.isfinite(mae))
    assert np.all(mae.std(axis=1) > 0)  # the generative decoder's noise moves every event


def test_runs_on_nowcastnet_case_folders(studied_run, tmp_path, cached_cli):
    """The release layout: --data on folders of 16-bit PNGs (no true motion, as released) of generated events."""
    import jax

    from jaxbench import registry
    from jaxbench.tasks.nowcast import generator, nowcastnet
    from jaxbench.tasks.nowcast.schema import NowcastData

    config = registry.make("nowcast-v0", "tiny").config
    events = generator.generate_events(jax.random.key(3), 18, config.data, config.simulator)._replace(motion=None)
    split = lambda a, b: jax.tree.map(lambda x: None if x is None else np.asarray(x)[a:b], events)  # noqa: E731
    nowcastnet.write_dataset(tmp_path / "cases", NowcastData(split(0, 8), split(8, 18)))
    out = tmp_path / "run"
    _, _, root = studied_run
    result = cached_cli(
        "run", "nowcast-v0", *TINY, "--data", str(tmp_path / "cases"), "--out", str(out), cache=root / "cache"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = records.read_json(out / "metrics.json")
    assert metrics["test_events"] == 10 and records.read_json(out / "manifest.json")["status"] == "complete"
    assert not any(k.endswith("motion_epe") for k in records.read_arrays(out / "arrays" / "per_sample"))  # no truth
    sums = records.read_json(out / "manifest.json")["data_checksums"]  # every file the run read, hashed
    frame = tmp_path / "cases" / "test" / "8" / "8-00.png"
    assert sums[str(frame)] == records.sha256_file(frame) and len(sums) == 1 + 18 * 10


def test_power_spectra_are_the_events_mean_of_pysteps_rapsd(studied_run):
    from pysteps.utils.spectral import rapsd

    from jaxbench.tasks.nowcast import studies

    rng = np.random.default_rng(0)
    frames = rng.gamma(0.6, 5.0, (3, 2, 24, 24)).astype(np.float32)
    spectra, freq = studies.mean_spectra(frames, pixel_km=4.0)
    reference = [[rapsd(f, fft_method=np.fft, return_freq=True, d=4.0) for f in event] for event in frames]
    np.testing.assert_allclose(spectra, np.mean([[r[0] for r in e] for e in reference], axis=0), rtol=1e-4)
    np.testing.assert_allclose(freq, reference[0][0][1], rtol=1e-6)
    out, _, _ = studied_run
    result = table.load(out / "studies" / "power_spectrum")
    groups = {row.group for row in result.rows}
    assert groups == {*FORECASTERS, "evolution operator"}
    assert result.arrays["observed"].shape == (6, len(result.arrays["frequencies"]))
