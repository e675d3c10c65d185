"""oscillator-v0: the least-squares fit against scipy, noiseless recovery, conformance, the file format, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import curve_fit

import jaxbench
from jaxbench import runner
from jaxbench.errors import DataFormatError
from jaxbench.runner import stream_key
from jaxbench.studies import Study, StudyContext, StudyInfo, StudyResult, make_rows
from jaxbench.studies.catalogue import line_plot
from jaxbench.tasks.oscillator import config as oscillator_config
from jaxbench.tasks.oscillator import task as oscillator
from jaxbench.testing import check_task

CONFIG = oscillator_config.TINY
# The prior a training set over the default omega0 range gives (fit): trial frequencies and a starting zeta.
PRIOR = {"omegas": jnp.linspace(0.8, 7.5, 512), "zeta": jnp.float32(0.1)}
T = jnp.linspace(0.0, CONFIG.duration_s, CONFIG.n_times)
fit_one = jax.jit(oscillator.fit_trajectory)


def damped_cosine_float64(t, a, zeta, omega0, phi):
    """The model in float64 numpy, written independently of the task's ``trajectory``."""
    omega_d = omega0 * np.sqrt(1.0 - zeta**2)
    return a * np.exp(-zeta * omega0 * t) * np.cos(omega_d * t + phi)


def tiny_data(seed: int = 0) -> oscillator.Data:
    return oscillator.generate(stream_key(jax.random.key(seed), "data"), CONFIG)


def test_fit_matches_scipy_curve_fit_in_float64():
    """On noisy trajectories both find the same least-squares optimum: omega0 and zeta to 1e-5 (float32 gives ~1e-7)."""
    rng = np.random.default_rng(7)
    t = np.asarray(T, np.float64)
    for a, zeta, omega0, phi in [
        (1.0, 0.05, 2.0, 0.3),
        (0.7, 0.15, 4.5, -2.0),
        (1.8, 0.02, 5.5, 1.2),
        (1.2, 0.1, 1.3, 2.9),
    ]:
        y = damped_cosine_float64(t, a, zeta, omega0, phi) + 0.1 * rng.standard_normal(t.size)
        theta = np.asarray(fit_one(T, jnp.asarray(y, jnp.float32), PRIOR))
        reference, _ = curve_fit(
            damped_cosine_float64, t, y, p0=(a, zeta, omega0, phi), method="lm", xtol=1e-12, ftol=1e-12
        )
        assert theta[2] == pytest.approx(reference[2], rel=1e-5), (theta, reference)
        assert theta[1] == pytest.approx(reference[1], abs=1e-5), (theta, reference)


@given(zeta=st.floats(0.01, 0.2), omega0=st.floats(1.0, 6.0), amplitude=st.floats(0.5, 2.0), phi=st.floats(-3.1, 3.1))
def test_noiseless_trajectories_recover_omega0_and_zeta(zeta, omega0, amplitude, phi):
    """Without noise the fit lands on the truth: omega0 to 1e-5 relative, zeta to 1e-5, over the whole prior range."""
    x = oscillator.trajectory(jnp.array([amplitude, zeta, omega0, phi], jnp.float32), T)
    theta = np.asarray(fit_one(T, x, PRIOR))
    assert theta[2] == pytest.approx(omega0, rel=1e-5)
    assert theta[1] == pytest.approx(zeta, abs=1e-5)


def test_measurement_noise_comes_from_the_evaluation_keys():
    """Same key, same fit; other keys draw other noise; sigma = 0 makes the fit independent of the key."""
    data = tiny_data()
    items = jax.tree.map(lambda a: a[:4], data)
    shared = {**PRIOR, "noise_sigma": jnp.float32(0.1)}
    keys = jax.random.split(jax.random.key(1), 4)
    first, again = oscillator.evaluate(shared, items, keys), oscillator.evaluate(shared, items, keys)
    other = oscillator.evaluate(shared, items, jax.random.split(jax.random.key(2), 4))
    np.testing.assert_array_equal(first["omega0"], again["omega0"])
    assert not np.allclose(first["omega0"], other["omega0"])
    quiet = {**shared, "noise_sigma": jnp.float32(0.0)}
    np.testing.assert_allclose(
        oscillator.evaluate(quiet, items, keys)["omega0"],
        oscillator.evaluate(quiet, items, jax.random.split(jax.random.key(2), 4))["omega0"],
    )


def test_conformance():
    view = check_task("oscillator-v0", "tiny")
    assert len(view.items.omega0) == CONFIG.n_test


def test_published_format_round_trips_exactly(tmp_path):
    data = tiny_data()
    path = oscillator.save(tmp_path / "oscillators", data, CONFIG)
    assert path.name == "oscillators.npz"
    assert sorted(np.load(path).files) == ["omega0", "t", "x", "zeta"]
    loaded = oscillator.load(path, jax.random.key(0), CONFIG)
    for name in oscillator.Data._fields:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))


@pytest.mark.parametrize(
    "broken, key",
    [
        (lambda arrays: arrays.pop("zeta"), "zeta"),
        (lambda arrays: arrays.update(omega0=arrays["omega0"][:-1]), "omega0"),
        (lambda arrays: arrays.update(t=arrays["t"][:, :-1]), "t"),
        (lambda arrays: arrays.update(x=arrays["x"][:, 0]), "x"),
    ],
)
def test_bad_file_names_the_key(tmp_path, broken, key):
    arrays = {name: np.asarray(value) for name, value in tiny_data()._asdict().items()}
    broken(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataFormatError, match=f"key '{key}' is missing or misshapen") as error:
        oscillator.load(tmp_path / "bad.npz", jax.random.key(0), CONFIG)
    assert "bad.npz" in str(error.value) and "\n" not in str(error.value)


def test_file_without_test_rows_is_refused(tmp_path):
    data = jax.tree.map(lambda a: a[: CONFIG.n_train], tiny_data())
    path = oscillator.save(tmp_path / "train_only", data, CONFIG)
    with pytest.raises(DataFormatError, match="N > n_train"):
        oscillator.load(path, jax.random.key(0), CONFIG)


def test_config_is_validated():
    with pytest.raises(jaxbench.ConfigError, match="zeta"):
        jaxbench.make("oscillator-v0", "tiny", zeta="0.1,1.5")
    with pytest.raises(jaxbench.ConfigError, match="n_times"):
        jaxbench.make("oscillator-v0", "tiny", omega0_rad_s="1,12")


def test_cli_run_writes_metrics_report_and_the_three_studies(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxbench.cli",
            "run",
            "oscillator-v0",
            "--preset",
            "tiny",
            "--no-progress",
            "--out",
            str(out),
            "--study",
            "all",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {c.metric for c in oscillator_config.CRITERIA} <= set(metrics)
    assert 0 < metrics["omega0_rel_error_median"] < 0.05
    assert "Natural frequency" in (out / "report.html").read_text()
    for study in oscillator_config.STUDIES:
        assert (out / "studies" / study / "result.json").exists()
    assert {p.name for p in Path(out, "arrays", "outputs").iterdir()} >= {"omega0", "zeta"}


# The custom study of docs/adding_a_task.md, verbatim: a task can bring a study kind without editing the core.

NOISE_SCAN = StudyInfo(
    "noise_scan",
    "Noise scan",
    "How fast do the errors grow with the measurement noise?",
    line_plot("noise sigma (units of x)", "Median per-sample errors vs the measurement noise."),
)


def noise_scan(sigmas: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.4)) -> Study:
    """The test set re-measured at each noise level: the median of every per-sample metric vs sigma."""

    def run(ctx: StudyContext) -> StudyResult:
        rows = []
        for i, sigma in enumerate(sigmas):  # a loop over study points; the items inside are one sharded sweep
            shared = {**ctx.shared, "noise_sigma": np.float32(sigma)}
            outputs = ctx.evaluate(ctx.items, jax.random.fold_in(ctx.key, i), shared=shared, unit=f"noise_scan.{i}")
            per_sample = ctx.task.per_sample_metrics(outputs, ctx.items)
            medians = {name: np.median(values) for name, values in per_sample.items()}
            rows += make_rows("", f"sigma={sigma:g}", sigma, 0, medians, support=len(ctx.items.omega0))
        return StudyResult("noise_scan", tuple(rows))

    return Study(NOISE_SCAN, run)


def test_a_study_of_its_own_runs_through_the_runner(tmp_path):
    task = jaxbench.make("oscillator-v0", "tiny")
    task = task.replace(studies={**task.studies, "noise_scan": noise_scan()})
    runner.execute(task, tmp_path / "run", studies=["noise_scan"], progress=False, log=lambda s: None)
    result = json.loads((tmp_path / "run" / "studies" / "noise_scan" / "result.json").read_text())
    medians = [row[5] for row in result["rows"] if row[4] == "omega0_rel_error"]
    assert medians[0] < 1e-5 and medians[-1] > medians[1]  # noiseless: exact; the error grows with sigma
    assert (tmp_path / "run" / "stages" / "study.noise_scan.0" / "chunk_00000.npz").exists()
    assert "Noise scan" in (tmp_path / "run" / "report.html").read_text()
