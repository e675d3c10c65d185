"""The jaxbench command: help, list/info, errors for bad input, and run/resume/report/compare."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxbench import records
from jaxbench.cli import main

TINY_RUN = ["--preset", "tiny", "--no-progress"]  # 2 mu values x 12 PEs in chunks of 8, a 46k-event pool


def jaxbench_cli(*args, devices: int = 2, **kwargs) -> subprocess.CompletedProcess:
    """The CLI in a fresh process on ``devices`` host devices (1 where sharding is not the point: faster)."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    return subprocess.run(
        [sys.executable, "-m", "jaxbench.cli", *args], capture_output=True, text=True, env=env, **kwargs
    )


def test_help_on_every_command(capsys):
    for command in ([], ["list"], ["info"], ["run"], ["report"], ["compare"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: jaxbench" in capsys.readouterr().out


def test_list_and_info(capsys):
    assert main(["list"]) == 0
    assert "fair_universe-v0" in capsys.readouterr().out
    assert main(["info", "fair_universe-v0"]) == 0
    out = capsys.readouterr().out
    assert "Objective criteria" in out and "profiled.coverage" in out and "n_pe_per_mu" in out


def test_bad_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "fair_universe-v0", "--quikc"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --quikc" in capsys.readouterr().err


def test_unknown_task_and_bad_config_are_named(capsys, tmp_path):
    assert main(["run", "fair_univers-v0", "--out", str(tmp_path / "r")]) == 2
    assert "Did you mean 'fair_universe-v0'" in capsys.readouterr().err
    assert main(["run", "fair_universe-v0", "--set", "analysis.n_pe_per_mu=lots", "--out", str(tmp_path / "r")]) == 2
    assert "analysis.n_pe_per_mu=lots" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bad_data_file_names_the_column_and_leaves_no_run_directory(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "data.parquet"
    pq.write_table(pa.table({"PRI_lep_pt": np.ones(3)}), bad)
    out = tmp_path / "run"
    result = jaxbench_cli("run", "fair_universe-v0", *TINY_RUN, "--data", str(bad), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert "PRI_met" in result.stderr and "data.parquet" in result.stderr
    assert not out.exists()
    result = jaxbench_cli("run", "fair_universe-v0", "--data", str(tmp_path / "missing.parquet"), "--out", str(out))
    assert result.returncode == 2 and "missing.parquet" in result.stderr and not out.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    result = jaxbench_cli("run", "fair_universe-v0", *TINY_RUN, "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_run_writes_a_complete_run_directory(finished_run):
    out, stdout = finished_run
    assert "coverage score" in stdout and "report.html" in stdout
    manifest = records.read_json(out / "manifest.json")
    assert manifest["status"] == "complete" and manifest["seed"] == 0 and manifest["task_id"] == "fair_universe-v0"
    assert manifest["config"]["analysis"]["n_pe_per_mu"] == 12 and manifest["environment"]["packages"]["jax"]
    assert "data" in manifest["data_checksums"] and manifest["preset"] == "tiny"
    scores = json.loads((out / "scores.json").read_text())
    assert {"quantiles_score", "interval", "coverage", "rmse", "mae", "n_pseudo_experiments"} <= set(scores)
    assert scores["n_pseudo_experiments"] == 24
    per_pe = records.read_arrays(out / "arrays" / "outputs")
    assert per_pe["profiled_p16"].shape == (24,) and np.all(per_pe["profiled_p16"] <= per_pe["profiled_p84"])
    html = (out / "report.html").read_text()
    for title in ("Scores", "Coverage and width vs μ_true", "Pulls", "Classifier and templates", "Events"):
        assert title in html
    assert html.count("data:image/png;base64,") == 5  # one per figure
    assert {p.name for p in (out / "plots").iterdir()} >= {"coverage_vs_mu.png", "pulls.png", "features.png"}


def test_existing_run_directory_needs_resume(finished_run):
    out, _ = finished_run
    result = jaxbench_cli("run", "fair_universe-v0", *TINY_RUN, "--out", str(out))
    assert result.returncode == 2 and "--resume" in result.stderr
    result = jaxbench_cli("run", "fair_universe-v0", *TINY_RUN, "--seed", "1", "--out", str(out), "--resume")
    assert result.returncode == 2 and "seed" in result.stderr


def test_killed_run_resumes_to_the_same_numbers(finished_run, tmp_path):
    reference, _ = finished_run
    out = tmp_path / "killed"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "jaxbench.cli", "run", "fair_universe-v0", *TINY_RUN, "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_chunk = out / "stages" / "evaluate" / "chunk_00000.npz"
    deadline = time.time() + 600
    while not first_chunk.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_chunk.exists(), "the run never reached its first chunk"
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed"
    assert records.read_json(out / "manifest.json")["status"] == "running"

    result = jaxbench_cli("run", "fair_universe-v0", *TINY_RUN, "--out", str(out), "--resume", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[resume] stage 'fit.classifier'" in result.stdout
    resumed = records.read_arrays(out / "arrays" / "outputs")
    uninterrupted = records.read_arrays(reference / "arrays" / "outputs")
    for name, values in uninterrupted.items():
        np.testing.assert_array_equal(resumed[name], values, err_msg=name)
    assert json.loads((out / "scores.json").read_text()) == json.loads((reference / "scores.json").read_text())


def test_report_and_compare(finished_run, capsys):
    out, _ = finished_run
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").exists()
    capsys.readouterr()
    assert main(["compare", str(out), str(out)]) == 0
    table = capsys.readouterr().out
    assert "profiled.quantiles_score" in table and Path(out).name in table


@pytest.mark.slow  # ~100 s; the checksums of files read by --data are also checked in tests/nowcast (1 s of its run)
def test_run_on_a_published_format_file_records_its_checksum(tmp_path):
    import jax

    from jaxbench.tasks.fair_universe.derived import derived_features
    from jaxbench.tasks.fair_universe.generator import generate_pool, normalise_to_yields
    from jaxbench.tasks.fair_universe.io import write_parquet

    pool = normalise_to_yields(generate_pool(jax.random.key(9), (4000, 30000, 8000, 4000)))
    pool = type(pool)(*(np.asarray(a) for a in pool))
    data = tmp_path / "FAIR_Universe_HiggsML_data.parquet"
    write_parquet(data, pool, np.asarray(derived_features(pool.pri)))
    out = tmp_path / "run"
    result = jaxbench_cli(
        "run", "fair_universe-v0", *TINY_RUN, "--data", str(data), "--out", str(out), devices=1, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = records.read_json(out / "manifest.json")
    assert manifest["data"] == str(data) and manifest["status"] == "complete"
    assert manifest["data_checksums"][str(data)] == records.sha256_file(data)
    assert json.loads((out / "scores.json").read_text())["n_pseudo_experiments"] == 24


def test_studies_run_on_a_finished_run_and_appear_in_the_report(finished_run, tmp_path):
    """The mechanism: studies added to a finished run reuse its stages and land in its report and manifest (two
    cheap studies; every fair_universe study's content is tested in tests/fair_universe/test_fu_structural.py)."""
    import shutil

    out = tmp_path / "studies"
    shutil.copytree(finished_run[0], out)
    names = ("breakdown", "correlation")
    study_flags = [flag for name in names for flag in ("--study", name)]
    result = jaxbench_cli(
        "run", "fair_universe-v0", *TINY_RUN, "--out", str(out), "--resume", *study_flags, devices=1, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[resume] stage 'fit.classifier'" in result.stdout  # the pipeline is not redone
    html = (out / "report.html").read_text()
    for name in names:
        table = (out / "studies" / name / "table.csv").read_text().splitlines()
        assert table[0] == "study,group,slice,x,seed,metric,value,error,support" and len(table) > 2, name
    for title in ("Study: Per-sample breakdown", "Study: Metric correlation"):
        assert title in html
    assert records.read_json(out / "manifest.json")["studies"] == list(names)


def test_unknown_study_is_named_before_anything_is_written(capsys, tmp_path):
    assert main(["run", "fair_universe-v0", "--study", "rotation", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--study rotation" in err and "rotation_scan" in err and "Supported" in err
    assert not (tmp_path / "r").exists()
    assert main(["info", "fair_universe-v0"]) == 0
    out = capsys.readouterr().out
    assert "feature_ood" in out and "sample_efficiency" in out
