"""Runs that never lie: seeds, the resume fingerprint, the lock, unfinished directories, honest status."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxbench
from jaxbench import cli, records, rundir, runner
from jaxbench.errors import ConfigError


def oscillator(**overrides):
    return jaxbench.make("oscillator-v0", "tiny", **overrides)


def run(task, out, logs=None, **kwargs):
    log = logs.append if logs is not None else (lambda s: None)
    return runner.execute(task, out, progress=False, log=log, **kwargs)


# -- seeds -------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(0, rundir.MAX_SEED), st.integers(0, rundir.MAX_SEED))
def test_distinct_seeds_give_distinct_keys(a, b):
    data_a, data_b = (np.asarray(jax.random.key_data(rundir.root_key(s))) for s in (a, b))
    assert (data_a == data_b).all() == (a == b)
    assert int(data_a[0]) << 32 | int(data_a[1]) == a  # the map is one to one: the words give the seed back


def test_small_seeds_keep_jax_random_key():
    for seed in (0, 1, 2**31, 2**32 - 1):
        np.testing.assert_array_equal(
            jax.random.key_data(rundir.root_key(seed)), jax.random.key_data(jax.random.key(seed))
        )
    assert not (jax.random.key_data(rundir.root_key(2**32)) == jax.random.key_data(rundir.root_key(0))).all()


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "3", True, None])
def test_seeds_outside_the_range_are_refused(seed):
    with pytest.raises(ConfigError, match=r"2\*\*63-1"):
        rundir.check_seed(seed)


def test_seed_two_to_the_32_is_not_seed_zero(finished, tmp_path):
    zero = records.read_json(finished / "metrics.json")  # seed 0
    wrapped = run(oscillator(), tmp_path / "wrapped", seed=2**32)
    assert zero != records.to_jsonable(wrapped.metrics)
    manifest = records.read_json(tmp_path / "wrapped" / "manifest.json")
    assert manifest["seed"] == 2**32 and "threefry" in manifest["key"]


def test_cli_refuses_a_negative_seed(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "oscillator-v0", "--seed", "-1"])
    assert exit_.value.code == 2 and "2**63-1" in capsys.readouterr().err


# -- resume -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    run(oscillator(), out)
    return out


def copy_of(finished, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    return out


def test_resume_with_other_data_is_refused_with_the_difference(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    task = oscillator()
    data = task.save(tmp_path / "other", task.generate(jax.random.key(5), task.config), task.config)
    with pytest.raises(ConfigError, match=r"data: 'generated' -> '.*other\.npz'") as error:
        run(task, out, data=data, resume=True)
    assert "data_sha256" in str(error.value)
    assert records.read_json(out / "manifest.json")["data"] == "generated"  # nothing rewritten


def test_resume_with_another_config_names_the_key(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    with pytest.raises(ConfigError, match=r"config\.n_test: 32 -> 40"):
        run(oscillator(n_test=40), out, resume=True)


def test_resume_keeps_every_attempts_timings(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    first = records.read_json(out / "manifest.json")
    logs = []
    run(oscillator(), out, logs, resume=True)
    manifest = records.read_json(out / "manifest.json")
    assert [a["resumed"] for a in manifest["attempts"]] == [False, True]
    assert manifest["attempts"][0] == first["attempts"][0]
    assert manifest["timings_s"]["data"] == first["timings_s"]["data"] > 0  # the stage was timed once, kept
    assert any("[resume] stage 'data'" in line for line in logs)


def test_a_finished_run_needs_resume(finished):
    with pytest.raises(ConfigError, match="--resume"):
        run(oscillator(), finished)


# -- the directory ------------------------------------------------------------------------------------
def test_out_on_a_file_or_an_unwritable_place_is_one_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        run(oscillator(), tmp_path / "file")
    with pytest.raises(ConfigError, match="cannot write there"):
        run(oscillator(), tmp_path / "file" / "run")
    with pytest.raises(ConfigError, match="cannot write there"):
        run(oscillator(), Path("/sys/jaxbench-run"))


def test_an_error_after_the_data_stage_leaves_a_directory_a_rerun_replaces(tmp_path):
    out, task = tmp_path / "run", oscillator()

    def broken_fit(key, data, config, stage):
        raise ConfigError("fit: refused on purpose")

    with pytest.raises(ConfigError, match="on purpose"):
        run(task.replace(fit=broken_fit), out)
    manifest = records.read_json(out / "manifest.json")
    assert manifest["status"] == "error" and "on purpose" in manifest["error"]
    logs = []
    view = run(task, out, logs)
    assert view.status == "complete" and any("replacing it" in line for line in logs)
    assert records.read_json(out / "manifest.json")["status"] == "complete"


def test_an_error_before_any_stage_leaves_nothing(tmp_path):
    def broken_generate(key, config):
        raise ConfigError("generate: refused on purpose")

    with pytest.raises(ConfigError):
        run(oscillator().replace(generate=broken_generate), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_validate_runs_before_the_directory_is_touched(tmp_path):
    def validate(config, path):
        raise ConfigError("validate: no")

    with pytest.raises(ConfigError, match="validate: no"):
        run(oscillator().replace(validate=validate), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_two_processes_never_share_a_directory(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = rundir.RunLock(out)
    holder.acquire()  # flock locks belong to open files: a second open conflicts even in one process
    try:
        with pytest.raises(ConfigError, match="another jaxbench process"):
            run(oscillator(), out)
    finally:
        holder.release()
    assert run(oscillator(), out).status == "complete"


# -- honest status --------------------------------------------------------------------------------------
def test_run_status_rules():
    finite, some_nan = {"e": np.ones(4)}, {"e": np.array([1.0, np.nan, 2.0, 3.0])}
    assert runner.run_status(finite, {"m": 1.0}, False) == ("complete", "")
    assert runner.run_status(finite, {"m": {"x": [1.0, float("nan")]}}, True)[0] == "failed"
    assert runner.run_status(some_nan, {"m": 1.0}, False) == ("failed", "1 of 4 items have non-finite e")
    status, note = runner.run_status(some_nan, {"m": 1.0}, True)
    assert status == "degraded" and note.startswith("1 of 4") and "other 3" in note
    assert runner.run_status({"e": np.full(4, np.inf)}, {"m": 1.0}, True)[0] == "failed"


def test_undefined_nans_of_declared_metrics_pass_but_their_infs_fail():
    per_lead = {"csi_16": np.array([[0.5, np.nan], [np.nan, np.nan], [1.0, 0.0]]), "mae": np.ones((3, 2))}
    assert runner.run_status(per_lead, {"m": 1.0}, False, ("csi_*",)) == ("complete", "")
    assert runner.run_status(per_lead, {"m": 1.0}, False)[1] == "2 of 3 items have non-finite csi_16"
    per_lead["csi_16"][2, 1] = np.inf
    assert runner.run_status(per_lead, {"m": 1.0}, False, ("csi_*",))[1] == "1 of 3 items have non-finite csi_16"


def test_per_sample_metrics_may_carry_trailing_axes_but_lead_with_the_items():
    checked = runner.check_per_sample({"csi": np.zeros((4, 3)), "n": np.arange(4)}, 4, "t-v0")
    assert checked["csi"].shape == (4, 3)
    with pytest.raises(ConfigError, match=r"per_sample_metrics\['csi'\] has shape \(3, 4\)"):
        runner.check_per_sample({"csi": np.zeros((3, 4))}, 4, "t-v0")


def test_generic_studies_see_one_value_per_item_nans_skipped():
    from jaxbench.studies.generic import item_values

    values = np.array([[1.0, 3.0, np.nan], [np.nan, np.nan, np.nan], [2.0, 2.0, 5.0]])
    np.testing.assert_allclose(item_values(values), [2.0, np.nan, 3.0])
    np.testing.assert_array_equal(item_values(np.arange(3)), np.arange(3))


def test_non_finite_results_fail_the_run_and_say_so_first(tmp_path):
    task = oscillator()
    evaluate = task.evaluate

    def nan_evaluate(shared, items, keys):
        return jax.tree.map(lambda x: x * np.nan, evaluate(shared, items, keys))

    view = run(task.replace(evaluate=nan_evaluate), tmp_path / "run", studies=["breakdown"])
    assert view.status == "failed"
    assert (tmp_path / "run" / "summary.txt").read_text().startswith("FAILED: non-finite metrics")
    manifest = records.read_json(tmp_path / "run" / "manifest.json")
    assert manifest["status"] == "failed" and not (tmp_path / "run" / "studies").exists()
    assert "FAILED: non-finite metrics" in (tmp_path / "run" / "report.html").read_text()


def test_the_manifest_lists_the_tasks_packages(tmp_path):
    view = run(oscillator().replace(packages=("hypothesis",)), tmp_path / "run")
    packages = records.read_json(view.directory / "manifest.json")["environment"]["packages"]
    assert packages["hypothesis"] is not None and packages["jax"] == jax.__version__


# -- the CLI's last line of defence ------------------------------------------------------------------
def test_ctrl_c_prints_one_line_with_the_resume_command(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "execute", interrupted)
    assert cli.main(["run", "oscillator-v0", "--preset", "tiny", "--out", "x"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "jaxbench: interrupted; continue with: jaxbench run oscillator-v0 --preset tiny --out x --resume"


def test_an_unexpected_exception_is_one_line_and_a_log(monkeypatch, capsys, tmp_path):
    def buggy(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(runner, "execute", buggy)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert cli.main(["run", "oscillator-v0", "--preset", "tiny", "--out", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxbench: internal error: ZeroDivisionError: a bug (traceback in ")
    log = Path(err[0].split("traceback in ")[1].split(")")[0])
    assert log.parent == tmp_path and "Traceback" in log.read_text()


def test_a_failed_run_exits_3(monkeypatch, tmp_path, capsys):
    task = oscillator()
    evaluate = task.evaluate
    broken = task.replace(evaluate=lambda s, i, k: jax.tree.map(lambda x: x * np.nan, evaluate(s, i, k)))
    monkeypatch.setattr(jaxbench.registry, "make", lambda *a, **k: broken)
    assert cli.main(["run", "oscillator-v0", "--out", str(tmp_path / "run"), "--no-progress"]) == 3
    assert "run failed: non-finite metrics" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"


def test_a_degraded_run_says_how_many_and_its_generic_studies_skip_them(tmp_path):
    task = oscillator()
    evaluate, score = task.evaluate, task.score

    def some_nan(shared, items, keys):  # the oscillators with omega0 above 5 rad/s fail
        out = evaluate(shared, items, keys)
        return {k: jax.numpy.where(items.omega0 > 5.0, np.nan, v) for k, v in out.items()}

    def nan_aware_score(per_sample, outputs, items, key):
        keep = np.isfinite(per_sample["omega0_rel_error"])
        return score({k: v[keep] for k, v in per_sample.items()}, outputs, items, key)

    broken = task.replace(evaluate=some_nan, score=nan_aware_score, partial=True)
    view = run(broken, tmp_path / "run", studies=["breakdown", "correlation"])
    n_bad = int(np.sum(np.asarray(view.items.omega0) > 5.0))
    assert 0 < n_bad < len(view.items.omega0)
    assert view.status == "degraded" and view.note.startswith(f"{n_bad} of {len(view.items.omega0)} items")
    assert (tmp_path / "run" / "summary.txt").read_text().startswith("DEGRADED:")
    for name in ("breakdown", "correlation"):
        result = json.loads((tmp_path / "run" / "studies" / name / "result.json").read_text())
        assert result["summary"]["dropped_non_finite"] == n_bad
        assert all(row[5] is not None and np.isfinite(row[5]) for row in result["rows"]), name  # values
