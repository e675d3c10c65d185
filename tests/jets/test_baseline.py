"""Physics baseline: exclusive-kT axes and τ_N against fastjet, symmetries, the logistic fit against scikit-learn."""

import math

import numpy as np
import pytest
from reference.jets_reference import exclusive_kt_axes_fastjet, nsubjettiness_reference, random_jets
from sklearn.linear_model import LogisticRegression

from jaxbench.errors import DataFormatError
from jaxbench.tasks.jets import baseline

SLOTS = 40
JETS = random_jets(np.random.default_rng(11), 6, SLOTS, max_real=SLOTS, min_particles=6)


def _two_prongs_far_apart():
    """A 400 GeV and a 150 GeV prong 1.2 apart in φ: with R = 0.8 the softer one leaves with the beam."""
    jet = np.zeros((1, SLOTS, 4), np.float32)
    rng = np.random.default_rng(0)
    rows = []
    for phi0, pt_total, n in ((0.0, 400.0, 6), (1.2, 150.0, 5)):
        pt = pt_total * rng.dirichlet(np.ones(n))
        eta, phi = 0.3 + rng.normal(0, 0.03, n), phi0 + rng.normal(0, 0.03, n)
        rows += [
            [p * math.cosh(e), p * math.cos(f), p * math.sin(f), p * math.sinh(e)] for p, e, f in zip(pt, eta, phi)
        ]
    rows.sort(key=lambda r: -math.hypot(r[1], r[2]))
    jet[0, : len(rows)] = rows
    return jet


def test_exclusive_kt_axes_match_fastjet():
    jets = np.concatenate([JETS, _two_prongs_far_apart()])
    for n in (1, 2, 3):  # R = 1000 (no beam merges) is covered by the next two tests
        axes, valid = baseline.exclusive_kt_axes(jets, n, baseline.R0)
        for jet, got, ok in zip(jets, np.asarray(axes), np.asarray(valid)):
            ref = exclusive_kt_axes_fastjet(jet, n, baseline.R0)
            assert ok.sum() == len(ref)
            # float32 sums of ~40 momenta: 1e-5 of the jet's energy scale
            np.testing.assert_allclose(got[ok], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_beam_merges_change_the_one_subjet_axis():
    jet = _two_prongs_far_apart()
    near, _ = baseline.exclusive_kt_axes(jet, 1, baseline.R0)
    whole, _ = baseline.exclusive_kt_axes(jet, 1, baseline.KT_AXES_RADIUS)
    np.testing.assert_allclose(np.asarray(whole)[0, 0], jet[0].sum(0), rtol=1e-5)
    hard = jet[0][np.abs(np.arctan2(jet[0, :, 2], jet[0, :, 1])) < 0.6].sum(0)
    np.testing.assert_allclose(np.asarray(near)[0, 0], hard, rtol=1e-5)  # the soft prong left with the beam
    np.testing.assert_allclose(np.asarray(near)[0, 0], exclusive_kt_axes_fastjet(jet[0], 1, baseline.R0)[0], rtol=1e-5)


@pytest.mark.parametrize("radius", [baseline.R0, baseline.KT_AXES_RADIUS])
def test_nsubjettiness_matches_fastjet_axes(radius):
    jets = np.concatenate([JETS, _two_prongs_far_apart()])
    tau = np.asarray(baseline.nsubjettiness(jets, 3, radius))
    ref = np.array([[nsubjettiness_reference(j, n, radius) for n in (1, 2, 3)] for j in jets])
    np.testing.assert_allclose(tau, ref, rtol=2e-5, atol=1e-7)  # float32 rapidities and sums


def test_substructure_is_invariant_under_beam_rotations_and_boosts():
    shapes = baseline.substructure(JETS)
    turned = JETS.copy()
    c, s = math.cos(2.0), math.sin(2.0)
    turned[..., 1], turned[..., 2] = c * JETS[..., 1] - s * JETS[..., 2], s * JETS[..., 1] + c * JETS[..., 2]
    gamma, beta = 1 / math.sqrt(1 - 0.6**2), 0.6  # a boost along the beam moves every rapidity by the same amount
    boosted = JETS.copy()
    boosted[..., 0] = gamma * (JETS[..., 0] - beta * JETS[..., 3])
    boosted[..., 3] = gamma * (JETS[..., 3] - beta * JETS[..., 0])
    for moved in (turned, boosted):
        other = baseline.substructure(moved.astype(np.float32))
        for name in baseline.Substructure._fields:
            np.testing.assert_allclose(getattr(other, name), getattr(shapes, name), rtol=5e-4, err_msg=name)


def test_few_particles_and_empty_jets():
    jets = np.zeros((3, SLOTS, 4), np.float32)
    jets[0, :2] = JETS[0, :2]  # two particles: τ2 = τ3 = 0
    jets[1, :1] = JETS[1, :1]
    shapes = baseline.substructure(jets)
    assert float(shapes.tau1[0]) > 0 and float(shapes.tau2[0]) == 0 and float(shapes.tau3[0]) == 0
    for name in baseline.Substructure._fields:
        values = np.asarray(getattr(shapes, name))
        assert np.all(np.isfinite(values)), name
        assert np.all(values[1:] == 0) or name == "mass", name
    assert float(shapes.tau32[0]) == 0 and float(shapes.mass[2]) == 0


def test_buckets_give_the_same_substructure():
    full = baseline.substructure(JETS)
    bucketed = baseline.substructure_bucketed(JETS, buckets=(24,), chunk=4)  # jets of <= 24 and of 25-40 slots
    assert sorted(set((JETS[..., 0] > 0).sum(1) > 24)) == [False, True]
    for name in baseline.Substructure._fields:
        np.testing.assert_allclose(getattr(bucketed, name), getattr(full, name), rtol=1e-5, atol=1e-7, err_msg=name)


def test_logistic_fit_matches_scikit_learn():
    rng = np.random.default_rng(0)
    n = 3000
    labels = rng.integers(0, 2, n)
    # mass-like (GeV) and τ32-like columns, overlapping classes
    x = np.stack([rng.normal(np.where(labels, 170, 90), 35), rng.normal(np.where(labels, 0.55, 0.75), 0.15)], -1)
    params = baseline.fit_baseline(x.astype(np.float32), labels, l2=0.0)
    weights = np.asarray(params.weights) / np.asarray(params.scale)
    bias = float(params.bias) - np.sum(weights * np.asarray(params.mean))
    ref = LogisticRegression(C=1e10, tol=1e-12, max_iter=10_000).fit(x, labels)
    np.testing.assert_allclose(weights, ref.coef_[0], rtol=1e-3)
    assert bias == pytest.approx(ref.intercept_[0], rel=1e-3)
    np.testing.assert_allclose(
        baseline.baseline_score(params, x.astype(np.float32)), ref.predict_proba(x)[:, 1], atol=1e-4
    )


def test_best_tau32_cut_is_the_brute_force_optimum():
    rng = np.random.default_rng(1)
    n = 300
    labels = rng.integers(0, 2, n)
    mass = rng.uniform(50, 300, n).astype(np.float32)
    tau32 = np.round(rng.uniform(0.2, 1.0, n) - 0.15 * labels, 2).astype(np.float32)  # rounded: ties
    zeros = np.zeros(n, np.float32)
    shapes = baseline.Substructure(mass, zeros, zeros, zeros, zeros, tau32)
    cut = baseline.best_tau32_cut(shapes, labels)
    inside = (mass > 120) & (mass < 220)
    best = max(
        0.5
        * (
            np.mean(inside[labels == 1] & (tau32[labels == 1] <= t))
            + 1
            - np.mean(inside[labels == 0] & (tau32[labels == 0] <= t))
        )
        for t in np.unique(tau32[inside])
    )
    assert float(cut.balanced_accuracy) == pytest.approx(best, abs=1e-6)
    score = np.asarray(baseline.window_tau32_score(shapes))
    assert np.all(score[~inside] == -1) and np.allclose(score[inside], 1 - tau32[inside])


def test_unknown_baseline_input_names_the_fields():
    shapes = baseline.substructure(JETS[:1])
    with pytest.raises(DataFormatError, match="tau32"):
        baseline.baseline_features(shapes, ("mass", "tau_32"))
    assert baseline.baseline_features(shapes).shape == (1, 2)
