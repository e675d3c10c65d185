"""fair_universe-v0's structural studies on the tiny preset: trusted ranges, the tes x jes map, the
azimuth variant and the permutation importance of the classifier's inputs."""

import types

import jax
import numpy as np
import optax
import pytest

import jaxbench
from jaxbench.runner import Runner, study_context
from jaxbench.sharding import batch_mesh
from jaxbench.studies import catalogue
from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe.classifier import balanced_weights, classifier_score, make_logit_fn
from jaxbench.tasks.fair_universe.estimator import train_on_pool
from jaxbench.tasks.fair_universe.studies import PHI_FEATURES, classifier_importance
from jaxbench.tasks.fair_universe.systematics import apply_nominal, nuisance_at, rotate_azimuth
from jaxbench.tasks.fair_universe.templates import event_features

PHI = [schema.FEATURE_COLUMNS.index(name) for name in PHI_FEATURES]


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """The feature_ood, variants and attribution studies of a tiny-preset estimator (one device: a
    sweep pads to a multiple of the device count, and one CPU device already uses every core)."""
    task = jaxbench.make("fair_universe-v0", "tiny")
    runner = Runner(
        tmp_path_factory.mktemp("fu_structural"), progress=False, log=lambda s: None, mesh=batch_mesh(jax.devices()[:1])
    )
    data = task.generate(jax.random.key(0), task.config)
    params = task.fit(jax.random.key(1), data, task.config, runner.stages("fit"))
    shared = task.prepare(params, data, task.config)
    view = types.SimpleNamespace(data=data, params=params, items=None, outputs=None, per_sample={}, features={})
    results = {
        name: task.studies[name].run(study_context(task, runner, view, shared, jax.random.key(2), name))
        for name in ("feature_ood", "variants", "attribution")
    }
    return task, data, results


@pytest.fixture(scope="module")
def blind(studied):
    """A tiny classifier trained without the absolute azimuths."""
    task, data, _ = studied
    return train_on_pool(jax.random.key(3), data.train, task.config.classifier, drop=PHI_FEATURES)[0]


def test_every_trusted_range_has_binomial_errors_and_the_configured_trend(studied):
    task, _, results = studied
    summary = results["feature_ood"].summary
    for name in schema.NUISANCES:
        entry = summary[name]["trusted_range"]["coverage"]
        assert entry["trend"] == task.config.studies.ood_trend
        assert all(p["error"] is not None and 0 < p["error"] < 0.5 for p in entry["points"]), name
        for side in ("lower", "upper"):
            fit = entry["fitted"][side]
            # A limit comes with its bootstrap interval (an end is None where replicas never cross).
            assert fit["beyond"] or any(v is not None for v in fit["interval"]), (name, side)


def test_coverage_map_has_the_grid_shape_and_its_centre_is_the_unshifted_point(studied):
    task, _, results = studied
    result = results["feature_ood"]
    entry = result.summary["maps"]["coverage tes x jes"]
    sigmas = list(task.config.studies.map_sigmas)
    assert entry["features"] == ["tes", "jes"] and entry["distance_a"] == sigmas == entry["distance_b"]
    value = np.asarray(entry["value"])
    assert value.shape == (len(sigmas), len(sigmas)) == np.shape(entry["trusted"]) == np.shape(entry["error"])
    tes, jes, covered, ok = (np.asarray(result.arrays[f"map.{k}"]) for k in ("tes", "jes", "covered", "scored"))
    n_per_cell = tes.size // value.size
    for i, a in enumerate(sigmas):
        for j, b in enumerate(sigmas):
            cell = slice((i * len(sigmas) + j) * n_per_cell, (i * len(sigmas) + j + 1) * n_per_cell)
            np.testing.assert_array_equal(tes[cell], np.float32(nuisance_at("tes", a)))
            np.testing.assert_array_equal(jes[cell], np.float32(nuisance_at("jes", b)))
            assert value[i, j] == pytest.approx(covered[cell][ok[cell]].mean(), abs=1e-6)
    centre = (sigmas.index(0.0), sigmas.index(0.0))
    rows = slice(
        (centre[0] * len(sigmas) + centre[1]) * n_per_cell, (centre[0] * len(sigmas) + centre[1] + 1) * n_per_cell
    )
    assert np.all(tes[rows] == 1.0) and np.all(jes[rows] == 1.0)  # the unshifted cell
    assert result.summary["map coverage tes x jes"]["centre_coverage"] == value[centre]
    assert entry["trusted_fraction"] == pytest.approx(np.mean(entry["trusted"]))
    captions = [figure.caption for figure in catalogue.FEATURE_OOD.plot(result)]
    assert "2-D trusted map of coverage tes x jes." in captions


def test_the_no_azimuth_classifier_does_not_see_the_azimuths(studied, blind):
    _, data, _ = studied
    pri = data.pool.pri[:5000]
    features = event_features(pri)
    scrambled = features.at[:, np.asarray(PHI)].set(
        jax.random.uniform(jax.random.key(0), (5000, len(PHI)), minval=-3.0)
    )
    np.testing.assert_array_equal(
        np.asarray(classifier_score(blind, scrambled)), np.asarray(classifier_score(blind, features))
    )
    # A physical rotation also moves the DER features by their float32 rounding only.
    turned = event_features(rotate_azimuth(pri, 1.3))
    np.testing.assert_allclose(classifier_score(blind, turned), classifier_score(blind, features), atol=2e-4)


def test_the_no_azimuth_variant_removes_the_mu_hat_shift_under_rotation(studied):
    result = studied[2]["variants"]
    assert result.groups() == ("all_features", "no_azimuth")
    (shift,) = result.select("mu_hat_shift", group="no_azimuth")
    (moved,) = result.select("mu_hat_shift_abs", group="no_azimuth")
    assert abs(shift.value) < 1e-3 and moved.value < 5e-3, (shift.value, moved.value)
    answer = result.summary["answer"][shift.slice]
    assert answer["mu_hat_shift.no_azimuth"]["mean"] == pytest.approx(shift.value)
    (wide,) = result.select("width", group="no_azimuth")
    (narrow,) = result.select("width", group="all_features")
    assert answer["width_cost.no_azimuth"]["mean"] == pytest.approx(wide.value - narrow.value)
    assert answer["width_cost.no_azimuth"]["error"] > 0
    assert "width" in result.summary["difference_vs_reference"]


def test_attribution_gives_inputs_the_classifier_cannot_use_zero_importance(studied, blind):
    task, data, results = studied
    result = classifier_importance(jax.random.key(5), blind, task.config.classifier.hidden, data.pool, 2000, 2)
    by_name = {r.slice: r for r in result.select("degradation")}
    for name in PHI_FEATURES:
        assert by_name[name].value == 0.0 and by_name[name].error == 0.0, name
    top = by_name[result.summary["ranking"][0]]
    assert top.slice not in PHI_FEATURES and top.value > 3 * top.error  # the inputs it sees do matter
    # With every event of the pool, the base metric is the classifier's class-balanced training loss.
    pool = data.pool
    everything = classifier_importance(jax.random.key(5), blind, task.config.classifier.hidden, pool, 10**9, 1)
    pri, weights, passed = apply_nominal(pool.pri, pool.weights, pool.process)
    keep = np.asarray(passed)
    labels = (np.asarray(pool.process) == schema.SIGNAL)[keep].astype(np.float32)
    logits = make_logit_fn(task.config.classifier.hidden)(blind, event_features(pri)[keep])
    w = np.asarray(balanced_weights(weights[keep], labels))
    loss = np.sum(w * np.asarray(optax.sigmoid_binary_cross_entropy(logits, labels))) / np.sum(w)
    assert everything.summary["n_events"] == keep.sum()
    assert everything.summary["base_metric_mean"] == pytest.approx(loss, rel=1e-4)
    run = results["attribution"]
    assert [r.slice for r in run.select("degradation")] == list(schema.FEATURE_COLUMNS)
    assert all(np.isfinite(r.value) and np.isfinite(r.error) for r in run.rows)
