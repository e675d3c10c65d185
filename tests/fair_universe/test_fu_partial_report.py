"""fair_universe-v0 scores the PEs that have an interval and says how many it dropped; its report
names the data source and explains the score and both RMSE conventions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxbench
from jaxbench.runner import run_status
from jaxbench.task import RunView
from jaxbench.tasks.fair_universe import report, schema
from jaxbench.tasks.fair_universe.classifier import TrainHistory
from jaxbench.tasks.fair_universe.estimator import Params, PEOutputs
from jaxbench.tasks.fair_universe.scoring import per_sample_metrics, score, scored, summary
from jaxbench.tasks.fair_universe.templates import TemplateModel

N_BINS = 8


@pytest.fixture(scope="module")
def task():
    return jaxbench.make("fair_universe-v0", "tiny")


def fake_outputs(n, seed=0):
    """Calibrated-looking fits of n PEs at the tiny preset's mu values, and their conditions."""
    rng = np.random.default_rng(seed)
    mu = np.repeat(np.asarray([0.5, 2.0], np.float32), n // 2)
    fits = []
    for sigma in (0.4, 0.2):  # profiled, statistical only
        mu_hat = (mu + sigma * rng.normal(size=n)).astype(np.float32)
        fits += [mu_hat, mu_hat - sigma, mu_hat + sigma, np.ones(n, bool)]
    hist = rng.poisson(1e4, (n, N_BINS)).astype(np.float32)
    items = schema.Conditions(mu, np.tile(schema.NOMINAL_NUISANCES, (n, 1)))
    return PEOutputs(hist, hist.sum(1), *fits), items


def spoil(outputs):
    """Four PEs without an interval: NaN / inf ends, an empty interval, a NaN statistical-only mu_hat."""
    a = {k: np.array(v) for k, v in outputs._asdict().items()}
    a["profiled_p84"][3] = np.nan
    a["profiled_p16"][10] = -np.inf
    a["profiled_p84"][17] = a["profiled_p16"][17]
    a["stat_only_mu_hat"][30] = np.nan
    return PEOutputs(**a), np.asarray([3, 10, 17, 30])


def test_pes_without_an_interval_are_dropped_counted_and_degrade_the_run(task):
    outputs, items = fake_outputs(40)
    spoiled, bad = spoil(outputs)
    key = jax.random.key(0)
    per_sample = per_sample_metrics(spoiled, items)
    metrics = score(per_sample, spoiled, items, key, task.config)
    assert metrics["n_pseudo_experiments"] == 40 and metrics["n_dropped"] == 4 and metrics["n_scored"] == 36
    assert all(np.isnan(v[bad]).all() and np.isfinite(np.delete(v, bad)).all() for v in per_sample.values())
    # The same numbers as scoring the 36 good PEs alone.
    keep = np.setdiff1d(np.arange(40), bad)
    subset = jax.tree.map(lambda x: np.asarray(x)[keep], (outputs, items))
    alone = score(per_sample_metrics(*subset), *subset, key, task.config)
    for estimator in ("profiled", "stat_only"):
        for name in ("quantiles_score", "coverage", "interval", "rmse_mu", "mean_pull", "std_pull"):
            assert metrics[estimator][name] == pytest.approx(alone[estimator][name], rel=1e-6)
        assert metrics[estimator]["codabench"] == pytest.approx(alone[estimator]["codabench"], rel=1e-6)
        assert np.isfinite(jax.tree.leaves(metrics[estimator])).all()
    assert task.partial
    status, note = run_status(per_sample, metrics, task.partial)
    assert status == "degraded" and note.startswith("4 of 40 items") and "the other 36" in note
    assert "(4 of 40 dropped: no finite interval)" in summary(metrics).caption
    assert task.files(metrics)["scores.json"]["n_dropped"] == 4


def test_a_run_where_no_pe_has_an_interval_fails(task):
    outputs, items = fake_outputs(10)
    outputs = outputs._replace(profiled_p16=np.full(10, np.nan, np.float32))
    assert not scored(outputs).any()
    per_sample = per_sample_metrics(outputs, items)
    metrics = score(per_sample, outputs, items, jax.random.key(0), task.config)
    assert run_status(per_sample, metrics, task.partial)[0] == "failed"


def test_summary_rows_say_which_rmse_is_the_challenges(task):
    outputs, items = fake_outputs(20)
    metrics = score(per_sample_metrics(outputs, items), outputs, items, jax.random.key(0), task.config)
    rows = {row[0]: row[1] for row in summary(metrics).rows}
    challenge = [label for label in rows if label.startswith("rmse of scores.json (challenge)")]
    plain = [label for label in rows if label.startswith("plain RMSE of mu_hat")]
    assert len(challenge) == 1 and len(plain) == 1
    assert rows[challenge[0]] == metrics["profiled"]["codabench"]["rmse"]
    assert rows[plain[0]] == metrics["profiled"]["rmse_mu"]
    assert "δμ̂ = (p84 − p16) / 2" in summary(metrics).caption


def fake_view(task, source, n_dropped=0):
    """A RunView of fake fits, templates and a small synthetic pool."""
    outputs, items = fake_outputs(40)
    outputs = spoil(outputs)[0] if n_dropped else outputs
    metrics = score(per_sample_metrics(outputs, items), outputs, items, jax.random.key(0), task.config)
    rng = np.random.default_rng(1)
    n = 400
    pri = np.zeros((n, 16), np.float32)
    pri[:, schema.PRI["PRI_lep_pt"]], pri[:, schema.PRI["PRI_had_pt"]] = rng.uniform(25, 80, (2, n))
    pri[:, schema.PRI["PRI_met"]] = rng.uniform(5, 60, n)
    for name in ("leading", "subleading"):
        for part in ("pt", "eta", "phi"):
            pri[:, schema.PRI[f"PRI_jet_{name}_{part}"]] = schema.MISSING
    pool = schema.EventPool(jnp.asarray(pri), jnp.ones(n), jnp.asarray(rng.integers(0, 4, n), jnp.int32))
    data = schema.Data(pool, pool, jnp.zeros((n, 2)))
    nominal = np.stack([np.full(N_BINS, 100.0), np.geomspace(1e5, 1e4, N_BINS), np.full(N_BINS, 5e3), np.full(8, 4e2)])
    templates = TemplateModel(jnp.linspace(0, 1, N_BINS + 1), jnp.asarray(nominal), jnp.zeros((3, 4, N_BINS, 3)))
    params = Params({}, TrainHistory(jnp.asarray([0.7, 0.6]), jnp.asarray([0.69, 0.62])), templates)
    features = {"mu_true": np.asarray(items.mu_true)}
    per_sample = per_sample_metrics(outputs, items)
    status = run_status(per_sample, metrics, True)
    return RunView(task.config, source, data, params, items, outputs, per_sample, features, metrics, None, *status)


@pytest.mark.parametrize("source", ["generated", "/data/FAIR_Universe_HiggsML_data.parquet"])
def test_the_report_opens_with_the_data_source_and_what_the_numbers_mean(task, source):
    view = fake_view(task, source)
    sections = report.sections(view)
    first = sections[0]
    assert first.title == "What the numbers mean"
    opening = first.text.split("\n\n")[0]
    if source == "generated":
        assert "embedded JAX event generator" in opening
    else:
        assert f"the file {source}" in opening and "generator" not in first.text
    assert "−ln((w + 10⁻³) · f(c))" in first.text and "0.6827 ± 2σ68" in first.text
    assert "scores.json's rmse" in first.text and "plain RMSE/MAE of mu_hat" in first.text
    captions = {f.name: f.caption for s in sections for f in s.figures}
    assert set(captions) == {"coverage_vs_mu", "width_vs_mu", "pulls", "score_templates", "features"}
    assert all(f.png.startswith(b"\x89PNG") for s in sections for f in s.figures)
    assert "beyond ±5" in captions["pulls"] and "statistical only: 0" in captions["pulls"]


def test_the_report_says_how_many_pes_were_dropped(task):
    view = fake_view(task, "generated", n_dropped=4)
    assert view.status == "degraded"
    text = report.sections(view)[0].text
    assert "4 of 40 PEs have no finite interval" in text and "the other 36" in text
