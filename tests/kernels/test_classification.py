"""Classification kernels against scikit-learn: ties, weights, tiny inputs, rejection, bootstrap."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, roc_auc_score, roc_curve

from jaxbench.kernels import classification


def sample(n, seed, decimals=None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = 1 / (1 + np.exp(-(1.5 * labels - 0.75 + rng.standard_normal(n))))
    return (np.round(scores, decimals) if decimals is not None else scores).astype(np.float32), labels


@pytest.mark.parametrize("decimals", [None, 2, 1])  # 1 decimal: heavy ties
def test_roc_and_auc_equal_sklearn_with_ties(decimals):
    scores, labels = sample(3000, 1, decimals)
    curve = classification.roc(scores, labels)
    assert float(classification.auc(curve)) == pytest.approx(roc_auc_score(labels, scores), abs=2e-6)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    ours = np.unique(np.stack([np.asarray(curve.fpr), np.asarray(curve.tpr)], 1), axis=0)
    theirs = np.unique(np.stack([fpr, tpr], 1).astype(np.float32), axis=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)  # the same points, ties as one step


def test_weighted_auc_equals_sklearn_sample_weight():
    scores, labels = sample(2000, 2, 2)
    weights = np.random.default_rng(3).uniform(0.1, 3.0, scores.size).astype(np.float32)
    auc = classification.auc(classification.roc(scores, labels, weights))
    assert float(auc) == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights), abs=2e-6)


def test_tiny_inputs():
    assert float(classification.auc(classification.roc(np.array([0.2, 0.9]), np.array([0, 1])))) == 1.0
    assert float(classification.auc(classification.roc(np.array([0.9, 0.2]), np.array([0, 1])))) == 0.0
    assert float(classification.auc(classification.roc(np.full(4, 0.5), np.array([0, 1, 0, 1])))) == 0.5


def test_rejection_and_accuracies_match_the_published_recipe():
    scores, labels = sample(5000, 4, 3)
    got = classification.metrics(scores, labels)
    fpr, tpr, _ = roc_curve(labels, scores)
    for efficiency, name in ((0.5, "rejection_at_50"), (0.3, "rejection_at_30")):
        assert float(got[name]) == pytest.approx(1 / np.interp(efficiency, tpr, fpr), rel=1e-4)
    predicted = (scores > 0.5).astype(int)
    assert float(got["accuracy"]) == pytest.approx(accuracy_score(labels, predicted), abs=1e-6)
    signal = labels == 1
    assert float(got["signal_accuracy"]) == pytest.approx(np.mean(predicted[signal] == 1), abs=1e-6)
    assert float(got["background_accuracy"]) == pytest.approx(np.mean(predicted[~signal] == 0), abs=1e-6)


def test_bootstrap_errors_agree_with_a_numpy_bootstrap():
    scores, labels = sample(1500, 5)
    _, errors = classification.bootstrap(scores, labels, jax.random.key(0), n_boot=300)
    rng = np.random.default_rng(0)
    aucs = []
    for _ in range(300):
        idx = rng.integers(0, scores.size, scores.size)
        aucs.append(roc_auc_score(labels[idx], scores[idx]))
    assert float(errors["auc"]) == pytest.approx(np.std(aucs, ddof=1), rel=0.25)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 200), st.integers(0, 10_000))
def test_auc_is_rank_based(n, seed):
    scores, labels = sample(n, seed, 1)
    if labels.min() == labels.max():
        labels[0] = 1 - labels[0]
    auc = float(classification.auc(classification.roc(scores, labels)))
    flipped = float(classification.auc(classification.roc(-scores, labels)))
    squashed = float(classification.auc(classification.roc(scores**3, labels)))  # monotone: same ranks
    assert auc == pytest.approx(1 - flipped, abs=1e-5) and auc == pytest.approx(squashed, abs=1e-6)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-5)


def test_binned_metrics_equal_each_bins_own_metrics_and_bootstrap():
    rng = np.random.default_rng(3)
    n = 600
    labels = rng.integers(0, 2, n)
    scores = np.clip(0.5 + 0.25 * (labels - 0.5) + 0.2 * rng.normal(size=n), 0, 1).astype(np.float32)
    bins = rng.integers(-1, 3, n)  # -1: in no bin
    values, errors = classification.binned_metrics(scores, labels, bins, 4, jax.random.key(0), n_boot=300)
    for b in range(3):
        inside = bins == b
        assert float(values["auc"][b]) == pytest.approx(roc_auc_score(labels[inside], scores[inside]), abs=1e-5)
        assert float(values["accuracy"][b]) == pytest.approx(np.mean((scores[inside] > 0.5) == labels[inside]), 1e-5)
        boot = [  # the multinomial bootstrap of the bin alone
            roc_auc_score(labels[inside][i], scores[inside][i])
            for i in rng.integers(0, inside.sum(), (300, inside.sum()))
        ]
        assert float(errors["auc"][b]) == pytest.approx(np.std(boot, ddof=1), rel=0.25)
    assert np.isnan(float(values["auc"][3]))  # the empty bin


def test_an_infinite_rejection_is_bounded_by_the_background_count():
    labels = np.array([0, 0, 0, 1, 1])
    separated = classification.metrics(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), labels)  # no background passes
    values, bounds = classification.bounded(separated, labels)
    assert np.isinf(float(separated["rejection_at_30"])) and bounds == {
        "rejection_at_50": True,
        "rejection_at_30": True,
    }
    assert values["rejection_at_30"] == 3.0 and values["auc"] == 1.0
    mixed = classification.metrics(np.array([0.1, 0.95, 0.3, 0.8, 0.9]), labels)  # a background jet leads
    values, bounds = classification.bounded(mixed, labels)
    assert not any(bounds.values()) and values["rejection_at_30"] == pytest.approx(float(mixed["rejection_at_30"]))
