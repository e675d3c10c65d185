"""DER features of FAIR Universe events against an independent float64 reference."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import fair_universe_numpy as ref

from jaxbench.tasks.fair_universe.derived import derived_features, vector_arctan2, vector_sin_cos
from jaxbench.tasks.fair_universe.schema import DER, DER_COLUMNS, MISSING, PRI, PRI_COLUMNS

# (rtol, atol) of float32 derived_features against float64 on the same float32 inputs;
# atol in GeV for masses and momenta, in rad or unitless otherwise.
TOLERANCES = {
    "DER_mass_transverse_met_lep": (1e-5, 1e-3),
    "DER_mass_vis": (1e-5, 1e-3),
    "DER_pt_h": (1e-5, 1e-3),
    "DER_deltaeta_jet_jet": (1e-6, 1e-5),
    "DER_mass_jet_jet": (1e-5, 1e-3),
    "DER_prodeta_jet_jet": (1e-6, 1e-5),
    "DER_deltar_had_lep": (1e-6, 1e-5),
    "DER_pt_tot": (1e-5, 1e-3),
    "DER_sum_pt": (1e-6, 1e-4),
    "DER_pt_ratio_lep_had": (1e-6, 0.0),
    "DER_met_phi_centrality": (0.0, 1e-4),
    "DER_lep_eta_centrality": (0.0, 1e-5),
}
JET_PAIR_FEATURES = ("DER_deltaeta_jet_jet", "DER_mass_jet_jet", "DER_prodeta_jet_jet", "DER_lep_eta_centrality")

derived_jit = jax.jit(derived_features)


def assert_features_close(actual, expected, scale=1.0):
    """Column by column with TOLERANCES (times scale), naming the first failing feature."""
    for name in DER_COLUMNS:
        rtol, atol = TOLERANCES[name]
        k = DER[name]
        np.testing.assert_allclose(actual[:, k], expected[:, k], rtol=rtol * scale, atol=atol * scale, err_msg=name)


def degenerate_events():
    """Events that hit every 0/0 and fallback: collinear objects, zero MET, equal jet etas."""
    pri = ref.random_pri(np.random.default_rng(7), 6, jet_pt_min=30.0)
    pri[:, PRI["PRI_n_jets"]] = 2
    pri[:, PRI["PRI_jet_leading_pt"]] = 80.0
    pri[:, PRI["PRI_jet_subleading_pt"]] = 40.0
    pri[:, PRI["PRI_jet_all_pt"]] = 120.0
    had = [PRI["PRI_had_eta"], PRI["PRI_had_phi"]]
    lep = [PRI["PRI_lep_eta"], PRI["PRI_lep_phi"]]
    jet1 = [PRI["PRI_jet_leading_eta"], PRI["PRI_jet_leading_phi"]]
    jet2 = [PRI["PRI_jet_subleading_eta"], PRI["PRI_jet_subleading_phi"]]
    pri[0, PRI["PRI_had_phi"]] = pri[0, PRI["PRI_lep_phi"]]  # sign(sin(had - lep)) = 0
    pri[1, [PRI["PRI_had_phi"], PRI["PRI_met_phi"]]] = pri[1, PRI["PRI_lep_phi"]]  # all aligned
    pri[2, PRI["PRI_met"]] = 0.0
    pri[3, jet2[0]] = pri[3, jet1[0]]  # equal jet etas
    pri[4, had] = pri[4, lep]  # collinear tau and lepton
    pri[5, jet2] = pri[5, jet1]  # collinear jets
    return pri


def test_matches_float64_reference_for_0_to_3_jets():
    pri = ref.random_pri(np.random.default_rng(0), 3000)
    assert set(pri[:, PRI["PRI_n_jets"]].astype(int)) == {0, 1, 2, 3}
    actual = np.asarray(derived_jit(pri))
    assert actual.dtype == np.float32 and actual.shape == (3000, 12)
    assert_features_close(actual, ref.derived_features(pri))


def test_jet_pair_features_are_missing_below_two_jets():
    pri = ref.random_pri(np.random.default_rng(1), 500)
    der = np.asarray(derived_jit(pri))
    below_two = pri[:, PRI["PRI_n_jets"]] < 2
    for name in JET_PAIR_FEATURES:
        assert np.all(der[below_two, DER[name]] == MISSING), name
        assert np.all(der[~below_two, DER[name]] != MISSING), name
    assert np.all(der[:, DER["DER_pt_h"]] >= 0) and np.all(der[:, DER["DER_pt_tot"]] >= 0)


def test_degenerate_events_follow_the_challenge_fallbacks():
    pri = degenerate_events()
    der = np.asarray(derived_jit(pri))
    assert_features_close(der, ref.derived_features(pri))
    assert der[1, DER["DER_met_phi_centrality"]] != MISSING  # rescued by the lepton phi shift
    assert der[4, DER["DER_mass_vis"]] == 0.0 and der[4, DER["DER_deltar_had_lep"]] == 0.0


def test_gradients_are_finite_at_degenerate_events():
    random = ref.random_pri(np.random.default_rng(2), 64)
    pri = jnp.asarray(np.concatenate([degenerate_events(), random]))

    def smooth(pri):
        return jnp.sum(jnp.tanh(derived_features(pri) / 50.0))

    value, grad = jax.jit(jax.value_and_grad(smooth))(pri)
    assert np.isfinite(value)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_elementwise_over_leading_axes():
    pri = ref.random_pri(np.random.default_rng(3), 24)
    flat = np.asarray(derived_jit(pri))
    batched = np.asarray(derived_jit(pri.reshape(2, 3, 4, 16)))
    np.testing.assert_array_equal(batched.reshape(24, 12), flat)


@given(seed=st.integers(0, 2**32 - 1), angle=st.floats(-math.pi, math.pi))
def test_derived_features_are_invariant_under_azimuthal_rotation(seed, angle):
    pri = ref.random_pri(np.random.default_rng(seed), 64)
    rotated = pri.copy()
    for name in PRI_COLUMNS:
        if name.endswith("_phi"):
            column = rotated[:, PRI[name]]
            rotated[:, PRI[name]] = np.where(column == MISSING, MISSING, column + np.float32(angle))
    # Rotated phis are rounded again in float32, hence ten times the reference tolerances.
    expected = np.asarray(derived_jit(pri))
    assert_features_close(np.asarray(derived_jit(rotated)), expected, scale=10.0)


@pytest.mark.parametrize("n_jets", [0, 1, 2, 3])
def test_pt_tot_counts_only_existing_leading_jets(n_jets):
    pri = ref.random_pri(np.random.default_rng(4), 200)
    pri = pri[pri[:, PRI["PRI_n_jets"]] == n_jets]
    der = np.asarray(derived_jit(pri))
    # With no jets pt_tot is pt_h; jets move it away from pt_h.
    same = np.isclose(der[:, DER["DER_pt_tot"]], der[:, DER["DER_pt_h"]], rtol=1e-6)
    assert same.all() if n_jets == 0 else not same.any()


def _ulps(actual, expected):
    """|actual - expected| in float32 ulps of the expected value."""
    expected32 = np.abs(expected).astype(np.float32)
    ulp = np.spacing(np.maximum(expected32, np.finfo(np.float32).tiny)).astype(np.float64)
    return np.abs(np.asarray(actual, np.float64) - expected) / ulp


def test_vector_sin_cos_within_two_ulps_of_float64():
    rng = np.random.default_rng(10)
    pi = np.float32(math.pi)
    special = np.array([pi, -pi, 2 * pi, -2 * pi, pi / 2, -pi / 2, 1e-4, 1e-30, MISSING], np.float32)
    special = np.concatenate(
        [[0.0], special, np.nextafter(special, np.float32(30)), np.nextafter(special, np.float32(-30))]
    )
    angle = np.concatenate([rng.uniform(-math.pi, math.pi, 20_000), rng.uniform(-30, 30, 20_000), special])
    angle = angle.astype(np.float32)
    sin, cos = jax.jit(vector_sin_cos)(angle)
    exact = angle.astype(np.float64)
    assert _ulps(sin, np.sin(exact)).max() <= 2.0
    assert _ulps(cos, np.cos(exact)).max() <= 2.0
    # The sign of sin decides DER_met_phi_centrality's side: right even next to multiples of pi.
    np.testing.assert_array_equal(np.sign(np.asarray(sin)), np.sign(np.sin(exact)))


def test_vector_arctan2_within_three_ulps_and_keeps_signed_zeros():
    rng = np.random.default_rng(11)
    y, x = (rng.normal(size=(2, 20_000)) * 40).astype(np.float32)
    angle = np.asarray(jax.jit(vector_arctan2)(y, x))
    exact = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    assert _ulps(angle, exact).max() <= 3.0
    zeros_and_ones = np.array([0.0, -0.0, 1.0, -1.0], np.float32)
    ys, xs = (a.ravel() for a in np.meshgrid(zeros_and_ones, zeros_and_ones))
    angle = np.asarray(vector_arctan2(ys, xs))
    exact = np.arctan2(ys.astype(np.float64), xs.astype(np.float64))
    assert _ulps(angle, exact).max() <= 1.0
    np.testing.assert_array_equal(np.signbit(angle), np.signbit(exact))  # atan2(-0, x) = -0, atan2(-0, -1) = -pi
