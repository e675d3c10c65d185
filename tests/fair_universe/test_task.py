"""The fair_universe-v0 estimator end to end: PE yields, templates, calibration, devices, adapter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import config as configs
from jaxbench.kernels.coverage import coverage_score
from jaxbench.kernels.segments import segment_sum
from jaxbench.runner import Runner
from jaxbench.sharding import batch_mesh
from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe import task as fu
from jaxbench.tasks.fair_universe.classifier import classifier_score
from jaxbench.tasks.fair_universe.pseudo_experiments import (
    draw_pseudo_experiment,
    max_event_rate,
    pe_key,
    pool_met_noise,
)
from jaxbench.tasks.fair_universe.systematics import apply_systematics
from jaxbench.tasks.fair_universe.templates import expected_counts, make_binned_yields


def test_generated_pool_is_normalised_to_the_challenge_yields(tiny_estimator):
    _, data, _ = tiny_estimator
    pool = data.pool
    zero = jnp.zeros((pool.num_events, 2))
    nominal = jnp.asarray(schema.NOMINAL_NUISANCES)
    _, weights, passed = apply_systematics(pool.pri, pool.weights, pool.process, nominal, zero)
    totals = segment_sum(jnp.where(passed, weights, 0.0), pool.process, 4)
    expected = [schema.EXPECTED_YIELDS[p] for p in schema.PROCESSES]
    np.testing.assert_allclose(np.asarray(totals), expected, rtol=1e-5)


def test_pe_totals_per_process_match_expected_yields_within_poisson_errors(tiny_estimator):
    _, data, _ = tiny_estimator
    pool = data.pool
    n_pe, mu = 200, 1.7
    nu = jnp.asarray(schema.NOMINAL_NUISANCES)
    keys = jax.random.split(jax.random.key(11), n_pe)
    max_rate = max_event_rate(pool, mu)
    noise = pool_met_noise(jax.random.key(4), pool)
    counts = jax.vmap(lambda k: draw_pseudo_experiment(k, pool, noise, mu, nu, max_rate).counts)(keys)
    per_process = np.asarray(jax.vmap(lambda c: segment_sum(c, pool.process, 4))(counts))
    expected = np.array([schema.EXPECTED_YIELDS[p] for p in schema.PROCESSES])
    expected[0] *= mu
    mean = per_process.mean(axis=0)
    # The mean of n_pe Poisson totals has standard error sqrt(expected / n_pe).
    assert np.all(np.abs(mean - expected) < 4 * np.sqrt(expected / n_pe)), (mean, expected)
    # A sum of Poisson counts is Poisson: its variance equals its mean (within sampling error).
    np.testing.assert_allclose(per_process.var(axis=0, ddof=1), expected, rtol=4 * np.sqrt(2 / n_pe))


def test_templates_reproduce_the_pool_histograms_at_and_off_nominal(tiny_estimator):
    task, data, params = tiny_estimator
    pool, model = data.pool, params.templates
    n_bins = model.edges.shape[0] - 1
    yields = make_binned_yields(classifier_score, n_bins)
    zero = jnp.zeros((pool.num_events, 2))
    nominal_nu = jnp.asarray(schema.NOMINAL_NUISANCES)
    direct = yields(params.classifier, pool, model.edges, nominal_nu, zero).sum(axis=0)
    # alpha = ln soft_met -> -inf is soft_met = 0: the template's own nominal point.
    alpha = jnp.array([1.0, 1.0, -30.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(np.asarray(expected_counts(model, 1.0, alpha)), np.asarray(direct), rtol=1e-4)
    # Off nominal (inside the fitted grids): the smooth response follows the direct histograms.
    nu = nominal_nu.at[0].set(1.02).at[1].set(0.985).at[4].set(1.3).at[5].set(1.001)
    direct = yields(params.classifier, pool, model.edges, nu, zero).sum(axis=0)
    alpha = jnp.array([1.02, 0.985, -30.0, 1.0, 1.3, 1.001])
    predicted = np.asarray(expected_counts(model, 1.0, alpha))
    stat = np.sqrt(np.asarray(direct))  # compare with the statistical error of one PE per bin
    assert np.all(np.abs(predicted - np.asarray(direct)) < 1.5 * stat)


def _config(task, **overrides):
    return configs.override(task.config, overrides)


def _run_pes(task, data, params, config, conditions, mesh):
    shared = fu.prepare(params, data, config)
    runner = Runner("unused", progress=False, log=lambda s: None, mesh=mesh)
    return runner.sweep(task.evaluate, shared, conditions, jax.random.key(5), chunk_size=conditions.mu_true.shape[0])


def test_profiled_intervals_cover_and_statistical_only_under_covers(tiny_estimator):
    task, data, params = tiny_estimator
    n = 320  # >= 300 PEs at fixed mu, all six systematics drawn from their priors
    config = _config(task, mu_values=(1.0,), n_pe_per_mu=n)
    conditions = fu.pe_conditions(jax.random.key(21), config)
    # One device: 8 forced host devices on 2 cores only add overhead (1 vs 8 is tested below).
    out = _run_pes(task, data, params, config, conditions, batch_mesh(jax.devices()[:1]))
    sigma68 = np.sqrt(0.6827 * 0.3173 / n)
    profiled = coverage_score(conditions.mu_true, out.profiled_p16, out.profiled_p84)
    stat_only = coverage_score(conditions.mu_true, out.stat_only_p16, out.stat_only_p84)
    assert abs(float(profiled.coverage) - 0.6827) < 3 * sigma68, float(profiled.coverage)
    assert float(stat_only.coverage) < 0.6827 - 3 * sigma68, float(stat_only.coverage)
    # Fits at soft_met >= 3 GeV (beyond ~1 prior sigma in ln soft_met) are the known hard case: with
    # this tiny classifier about 40% of them stop before the Newton tolerance (docs/tasks/fair_universe.md).
    bulk = conditions.nu_true[:, 2] < 3.0
    assert np.mean(out.profiled_converged[bulk]) > 0.97, np.mean(out.profiled_converged[bulk])
    assert float(profiled.score) > float(stat_only.score)


def test_one_and_eight_devices_give_the_same_numbers(tiny_estimator):
    task, data, params = tiny_estimator
    assert len(jax.devices()) == 8, "tests/conftest.py must force 8 host devices"
    config = _config(task, mu_values=(0.5, 2.0), n_pe_per_mu=8)
    conditions = fu.pe_conditions(jax.random.key(3), config)
    one = _run_pes(task, data, params, config, conditions, batch_mesh(jax.devices()[:1]))
    eight = _run_pes(task, data, params, config, conditions, batch_mesh())
    np.testing.assert_array_equal(one.hist, eight.hist)
    for name in ("profiled_mu_hat", "profiled_p16", "profiled_p84", "stat_only_p16", "stat_only_p84"):
        np.testing.assert_allclose(getattr(one, name), getattr(eight, name), rtol=1e-5, atol=1e-6, err_msg=name)


class CutAndCount:
    """A minimal challenge-style submission: count events in a visible-mass window."""

    observed: list = []

    def __init__(self, get_train_set=None, systematics=None):
        self.get_train_set, self.systematics = get_train_set, systematics

    def _selected(self, data):
        mass = np.asarray(data["DER_mass_vis"])
        return (mass > 60) & (mass < 110) & (np.asarray(data["PRI_had_pt"]) > 40)

    def fit(self):
        train = self.get_train_set()
        shifted = self.systematics(train, tes=1.01)  # the adapter's systematics must be callable
        assert len(shifted["data"]) > 0
        sel = self._selected(train["data"])
        self.s = float(np.sum(train["weights"][sel & (train["labels"] == 1)]))
        self.b = float(np.sum(train["weights"][sel & (train["labels"] == 0)]))

    def predict(self, test_set):
        n = float(np.sum(test_set["weights"][self._selected(test_set["data"])]))
        CutAndCount.observed.append(n)
        mu, delta = (n - self.b) / self.s, np.sqrt(n) / self.s
        return {"mu_hat": mu, "delta_mu_hat": delta, "p16": mu - delta, "p84": mu + delta}


def test_challenge_style_submission_is_evaluated_on_jaxbench_pes(tiny_estimator):
    from jaxbench.tasks.fair_universe.submission import evaluate_submission
    from jaxbench.tasks.fair_universe.templates import event_features

    task, data, _ = tiny_estimator
    pool = data.pool
    noise, root = pool_met_noise(jax.random.key(6), pool), jax.random.key(1)
    conditions = fu.pe_conditions(jax.random.key(8), _config(task, mu_values=(1.0, 2.0), n_pe_per_mu=2))
    conditions = {"index": np.arange(4), **conditions._asdict()}
    CutAndCount.observed = []
    out = evaluate_submission(CutAndCount, data.train, pool, noise, conditions, root)
    assert set(out) == {"mu_hat", "delta_mu_hat", "p16", "p84"} and out["mu_hat"].shape == (4,)
    assert np.all(out["p16"] < out["p84"]) and np.all(np.isfinite(out["mu_hat"]))
    # The rows handed to predict() are the PE's counts materialised: the same events jaxbench bins.
    for i in range(4):
        pe = draw_pseudo_experiment(
            pe_key(root, i), pool, noise, conditions["mu_true"][i], conditions["nu_true"][i], max_event_rate(pool, 2.0)
        )
        features = np.asarray(event_features(pe.pri))
        mass, had_pt = features[:, 16 + 1], features[:, 3]
        selected = (mass > 60) & (mass < 110) & (had_pt > 40)
        assert CutAndCount.observed[i] == float(np.sum(np.asarray(pe.counts)[selected]))


def test_a_submission_missing_an_output_is_named(tiny_estimator):
    from jaxbench.tasks.fair_universe.submission import SubmissionError, evaluate_submission

    class Broken(CutAndCount):
        def predict(self, test_set):
            return {"mu_hat": 1.0, "p16": 0.5, "p84": 1.5}

    task, data, _ = tiny_estimator
    pool = data.pool
    conditions = fu.pe_conditions(jax.random.key(8), _config(task, mu_values=(1.0,), n_pe_per_mu=1))
    conditions = {"index": np.arange(1), **conditions._asdict()}
    with pytest.raises(SubmissionError, match="delta_mu_hat"):
        evaluate_submission(
            Broken, data.train, pool, pool_met_noise(jax.random.key(6), pool), conditions, jax.random.key(1)
        )
