"""fair_universe-v0 refuses, in one line and before a run directory exists, what cannot work: bad
hyperparameters, files too small for a batch or without a class, empty files."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxbench
from jaxbench.cli import main
from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.runner import execute
from jaxbench.tasks.fair_universe import checks, io, schema
from jaxbench.tasks.fair_universe.derived import derived_features


def passing_events(n, seed=0, signal_fraction=0.2, failing_fraction=0.0):
    """Events in the release's layout that pass the cuts (no jets), except ``failing_fraction`` of them
    (hadronic tau below the 26 GeV cut)."""
    rng = np.random.default_rng(seed)
    pri = np.full((n, len(schema.PRI_COLUMNS)), schema.MISSING, np.float32)
    col = schema.PRI
    pri[:, col["PRI_lep_pt"]] = rng.uniform(22, 80, n)
    pri[:, col["PRI_had_pt"]] = np.where(rng.random(n) < failing_fraction, 20.0, rng.uniform(28, 80, n))
    for name in ("PRI_lep_eta", "PRI_had_eta"):
        pri[:, col[name]] = rng.uniform(-2, 2, n)
    for name in ("PRI_lep_phi", "PRI_had_phi", "PRI_met_phi"):
        pri[:, col[name]] = rng.uniform(-np.pi, np.pi, n)
    pri[:, col["PRI_met"]] = rng.uniform(5, 60, n)
    pri[:, col["PRI_n_jets"]] = 0
    pri[:, col["PRI_jet_all_pt"]] = 0
    process = np.where(rng.random(n) < signal_fraction, schema.SIGNAL, rng.integers(1, 4, n)).astype(np.int32)
    return schema.EventPool(pri, rng.exponential(1.0, n).astype(np.float32), process)


def write_release_file(path, pool):
    """``pool`` as an official-layout parquet file (with its metadata json) by the task's own writer."""
    der = np.asarray(derived_features(jnp.asarray(pool.pri))) if pool.num_events else np.zeros((0, 12), np.float32)
    io.write_parquet(path, pool, der.reshape(pool.num_events, len(schema.DER_COLUMNS)))
    return path


def one_line(error):
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.fixture
def tiny():
    return jaxbench.make("fair_universe-v0", "tiny")


def test_a_2000_row_file_names_the_batch_size_and_leaves_no_run_directory(tmp_path, tiny):
    data = write_release_file(tmp_path / "small.parquet", passing_events(2000))
    with pytest.raises(ConfigError) as error:
        execute(tiny, tmp_path / "run", data=data, progress=False, log=lambda s: None)
    text = one_line(error)
    assert "classifier.batch_size=1024" in text and "small.parquet" in text
    assert "--set classifier.batch_size=256" in text
    assert not (tmp_path / "run").exists()


def test_a_0_row_file_is_an_empty_file_error(tmp_path, tiny):
    data = write_release_file(tmp_path / "empty.parquet", passing_events(0))
    with pytest.raises(DataFormatError) as error:
        execute(tiny, tmp_path / "run", data=data, progress=False, log=lambda s: None)
    assert one_line(error).startswith("empty.parquet has 0 rows")
    assert not (tmp_path / "run").exists()


def test_the_cli_says_it_in_one_line_with_exit_code_2(tmp_path, capsys):
    data = write_release_file(tmp_path / "small.parquet", passing_events(2000))
    out = tmp_path / "run"
    assert main(["run", "fair_universe-v0", "--preset", "tiny", "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("jaxbench: error: classifier.batch_size=1024")
    assert not out.exists()


def test_a_file_whose_events_fail_the_cuts_fails_in_load_before_any_stage(tmp_path, tiny):
    # 2400 rows: 1080 training events before the cuts pass the footer check; after them too few are left.
    data = write_release_file(tmp_path / "cut.parquet", passing_events(2400, failing_fraction=0.3))
    checks.validate(tiny.config, data)
    with pytest.raises(ConfigError) as error:
        execute(tiny, tmp_path / "run", data=data, progress=False, log=lambda s: None)
    text = one_line(error)
    assert "classifier.batch_size=1024 is larger than the" in text and "pass the cuts" in text
    assert "cut.parquet" in text and "--set classifier.batch_size=" in text
    assert not (tmp_path / "run").exists()


def test_a_file_without_signal_is_refused(tmp_path):
    task = jaxbench.make("fair_universe-v0", "tiny", batch_size=64)
    data = write_release_file(tmp_path / "bkg.parquet", passing_events(3000, signal_fraction=0.0))
    with pytest.raises(DataFormatError) as error:
        execute(task, tmp_path / "run", data=data, progress=False, log=lambda s: None)
    assert "bkg.parquet: the training events hold 0 signal (htautau)" in one_line(error)
    assert not (tmp_path / "run").exists()


def test_too_few_signal_events_for_the_bins_names_n_bins(tiny):
    pool = passing_events(600, signal_fraction=0.004, seed=3)
    data = schema.Data(passing_events(3000), pool, np.zeros((600, 2), np.float32))
    n_signal = int(np.sum(pool.process == schema.SIGNAL))
    assert 0 < n_signal < tiny.config.analysis.n_bins
    config = jaxbench.registry.spec("fair_universe-v0").resolve_config("tiny", batch_size=64)
    with pytest.raises(ConfigError) as error:
        checks.check_data(data, config)
    assert "analysis.n_bins=8 needs as many signal events" in one_line(error)
    assert f"--set analysis.n_bins={n_signal}" in str(error.value)


def test_generated_data_too_small_for_a_batch_is_refused_by_validate():
    config = jaxbench.registry.spec("fair_universe-v0").resolve_config("tiny", train_events="100,100,100,100")
    with pytest.raises(ConfigError) as error:
        checks.validate(config, None)
    assert (
        "data.train_events=(100, 100, 100, 100)" in one_line(error)
        and "classifier.batch_size=1024" in error.value.args[0]
    )


def test_a_directory_is_not_a_data_file(tmp_path, tiny):
    with pytest.raises(DataFormatError, match="is a directory; pass the parquet file itself"):
        execute(tiny, tmp_path / "run", data=tmp_path, progress=False, log=lambda s: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "key, value, names",
    [
        ("learning_rate", "nan", "classifier.learning_rate"),
        ("learning_rate", "inf", "classifier.learning_rate"),
        ("learning_rate", "-1e-3", "classifier.learning_rate"),
        ("hidden", (), "classifier.hidden"),
        ("hidden", "", "classifier.hidden"),
        ("hidden", "16,0", "classifier.hidden"),
        ("batch_size", "0", "classifier.batch_size"),
        ("mu_values", "", "analysis.mu_values"),
        ("mu_values", "1,nan", "analysis.mu_values"),
        ("mu_values", "2,1", "analysis.mu_values"),
        ("n_bootstrap", "1", "analysis.n_bootstrap"),
        ("efficiency_fractions", "", "studies.efficiency_fractions"),
        ("efficiency_fractions", "0,1", "studies.efficiency_fractions"),
        ("efficiency_fractions", "0.5,1.5", "studies.efficiency_fractions"),
        ("ood_sigmas", "nan", "studies.ood_sigmas"),
        ("ood_sigmas", "", "studies.ood_sigmas"),
        ("trust_coverage_min", "nan", "studies.trust_coverage_min"),
        ("trust_coverage_min", "1.5", "studies.trust_coverage_min"),
        ("stability_keys", "1", "studies.stability_keys"),
        ("ood_trend", "cubic", "studies.ood_trend"),
        ("map_sigmas", "1,2", "studies.map_sigmas"),
        ("variant_fractions", "0,1", "studies.variant_fractions"),
        ("attribution_events", "1", "studies.attribution_events"),
        ("chunk_size", "0", "chunk_size"),
    ],
)
def test_bad_hyperparameters_are_refused_in_one_line_naming_the_key(key, value, names):
    with pytest.raises(ConfigError) as error:
        jaxbench.registry.make("fair_universe-v0", "tiny", **{key: value})
    text = one_line(error)
    assert f"{names} " in text and f"--set {names}=" in text


def test_learning_rate_nan_on_the_command_line_exits_2_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "fair_universe-v0", "--preset", "tiny", "--set", "learning_rate=nan", "--out", str(out)]) == 2
    assert "classifier.learning_rate must be finite" in capsys.readouterr().err
    assert not out.exists()


def test_a_small_file_in_another_format_is_reported_as_a_format_error_first(tmp_path, tiny):
    import pyarrow.parquet as pq

    data = write_release_file(tmp_path / "small.parquet", passing_events(2000))
    pq.write_table(pq.read_table(data).drop_columns(["PRI_met"]), data)
    with pytest.raises(DataFormatError, match="small.parquet has no column 'PRI_met'"):
        checks.validate(tiny.config, data)
