"""FAIR Universe systematics, cuts and nuisance priors: float64 reference and invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import fair_universe_numpy as ref

from jaxbench.errors import DataFormatError
from jaxbench.tasks.fair_universe.derived import derived_features
from jaxbench.tasks.fair_universe.schema import (
    DER,
    DER_COLUMNS,
    DIBOSON,
    MISSING,
    NOMINAL_NUISANCES,
    NUISANCES,
    PRI,
    PRI_COLUMNS,
    SIGNAL,
    TTBAR,
    ZTAUTAU,
)
from jaxbench.tasks.fair_universe.systematics import (
    NUISANCE_PRIORS,
    apply_systematics,
    pool_invariants,
    sample_mu,
    sample_nuisances,
    shifted_features,
    systematics_numpy,
)

N_EVENTS = 64
systematics_jit = jax.jit(apply_systematics)
derived_jit = jax.jit(derived_features)


def nuisance_vector(**values):
    """A nuisance vector: nominal except the named entries."""
    nu = NOMINAL_NUISANCES.copy()
    for name, value in values.items():
        nu[NUISANCES.index(name)] = value
    return nu


def pool(seed, n=N_EVENTS, jet_pt_min=20.0):
    """Random events with weights in [0.5, 2), every process, and standard-normal MET noise."""
    rng = np.random.default_rng(seed)
    pri = ref.random_pri(rng, n, jet_pt_min)
    weights = rng.uniform(0.5, 2.0, n).astype(np.float32)
    process = (np.arange(n) % 4).astype(np.int32)
    met_noise = rng.normal(size=(n, 2)).astype(np.float32)
    return pri, weights, process, met_noise


def passing(pri):
    """The same events moved above the had/lep cuts (random_pri starts both at 15 GeV)."""
    pri = pri.copy()
    pri[:, PRI["PRI_had_pt"]] += 11.0
    pri[:, PRI["PRI_lep_pt"]] += 5.0
    return pri


def met_xy(pri):
    met, phi = pri[:, PRI["PRI_met"]], pri[:, PRI["PRI_met_phi"]]
    return np.stack([met * np.cos(phi), met * np.sin(phi)], axis=-1)


def one_event(**values):
    """A single passing event (1, 16) with two jets, the named PRI columns (no prefix) replaced."""
    event = {
        "lep_pt": 40.0, "lep_eta": 0.5, "lep_phi": 0.3,
        "had_pt": 50.0, "had_eta": -0.2, "had_phi": 2.5,
        "jet_leading_pt": 80.0, "jet_leading_eta": 1.5, "jet_leading_phi": -1.0,
        "jet_subleading_pt": 40.0, "jet_subleading_eta": -2.0, "jet_subleading_phi": 1.2,
        "n_jets": 2.0, "jet_all_pt": 120.0, "met": 30.0, "met_phi": -2.0,
    }  # fmt: skip
    event.update(values)
    return np.array([[event[name.removeprefix("PRI_")] for name in PRI_COLUMNS]], np.float32)


def run(pri, nu, weights=None, process=None):
    n = pri.shape[0]
    weights = np.ones(n, np.float32) if weights is None else weights
    process = np.full(n, ZTAUTAU, np.int32) if process is None else process
    out = systematics_jit(pri, weights, process, nu, np.zeros((n, 2), np.float32))
    return tuple(np.asarray(x) for x in out)


@pytest.mark.parametrize(
    "nu",
    [
        NOMINAL_NUISANCES,
        nuisance_vector(tes=1.05, jes=0.93, soft_met=2.0, ttbar_scale=1.1, diboson_scale=1.4, bkg_scale=1.005),
        nuisance_vector(tes=0.92, jes=1.08, soft_met=4.5, ttbar_scale=0.85, diboson_scale=0.2, bkg_scale=0.995),
    ],
    ids=["nominal", "up", "down"],
)
def test_matches_float64_reference(nu):
    pri, weights, process, met_noise = pool(0, n=2000)
    outputs = systematics_jit(pri, weights, process, nu, met_noise)
    pri_out, weights_out, passed = (np.asarray(x) for x in outputs)
    ref_pri, ref_weights, ref_passed = ref.apply_systematics(pri, weights, process, nu, met_noise)

    # float32 and float64 may disagree within rounding of a threshold: leave those events out.
    tes, jes = float(nu[0]), float(nu[1])
    near = np.zeros(len(pri), bool)
    for name, scale, threshold in [
        ("PRI_had_pt", tes, 26.0), ("PRI_lep_pt", 1.0, 20.0),
        ("PRI_jet_leading_pt", jes, 26.0), ("PRI_jet_subleading_pt", jes, 26.0),
    ]:  # fmt: skip
        near |= np.abs(pri[:, PRI[name]].astype(np.float64) * scale - threshold) < 1e-3
    assert near.mean() < 0.01
    ok = ~near
    assert 0.2 < passed[ok].mean() < 0.95  # both outcomes are exercised

    np.testing.assert_array_equal(passed[ok], ref_passed[ok])
    np.testing.assert_allclose(weights_out[ok], ref_weights[ok], rtol=1e-6)
    # MET as (x, y): its phi is ill-conditioned where the MET is tiny. atol in GeV.
    np.testing.assert_allclose(met_xy(pri_out)[ok], met_xy(ref_pri)[ok], rtol=1e-5, atol=1e-4)
    for name in PRI_COLUMNS:
        if name not in ("PRI_met", "PRI_met_phi"):
            actual, expected = pri_out[ok, PRI[name]], ref_pri[ok, PRI[name]]
            np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-4, err_msg=name)


@given(seed=st.integers(0, 2**32 - 1), tes=st.floats(0.9, 1.1))
def test_tes_leaves_pt_h_invariant(seed, tes):
    pri, weights, process, _ = pool(seed)
    pri_out, _, _ = run(pri, nuisance_vector(tes=tes))
    before, after = np.asarray(derived_jit(pri)), np.asarray(derived_jit(pri_out))
    pt_h = DER["DER_pt_h"]
    np.testing.assert_allclose(after[:, pt_h], before[:, pt_h], rtol=1e-5, atol=2e-3)  # GeV
    had_pt = PRI["PRI_had_pt"]
    np.testing.assert_allclose(pri_out[:, had_pt], np.float32(tes) * pri[:, had_pt], rtol=1e-6)


@given(seed=st.integers(0, 2**32 - 1), jes=st.floats(0.9, 1.1))
def test_jes_leaves_pt_tot_invariant_when_no_jet_crosses_threshold(seed, jes):
    pri, weights, process, _ = pool(seed, jet_pt_min=30.0)  # 0.9 x 30 GeV stays above 26 GeV
    pri_out, _, _ = run(pri, nuisance_vector(jes=jes))
    np.testing.assert_array_equal(pri_out[:, PRI["PRI_n_jets"]], pri[:, PRI["PRI_n_jets"]])
    before, after = np.asarray(derived_jit(pri)), np.asarray(derived_jit(pri_out))
    pt_tot, sum_pt = DER["DER_pt_tot"], DER["DER_sum_pt"]
    np.testing.assert_allclose(after[:, pt_tot], before[:, pt_tot], rtol=1e-5, atol=2e-3)  # GeV
    np.testing.assert_allclose(
        after[:, sum_pt] - before[:, sum_pt], (np.float32(jes) - 1) * pri[:, PRI["PRI_jet_all_pt"]], atol=1e-3
    )


@given(
    ttbar_scale=st.floats(0.8, 1.2),
    # Not below 1e-3: XLA flushes subnormal float32 weights to zero, numpy does not.
    diboson_scale=st.one_of(st.just(0.0), st.floats(1e-3, 2.0)),
    bkg_scale=st.floats(0.99, 1.01),
)
def test_scale_nuisances_scale_only_their_processes(ttbar_scale, diboson_scale, bkg_scale):
    pri, weights, process, met_noise = pool(5)
    nu = nuisance_vector(ttbar_scale=ttbar_scale, diboson_scale=diboson_scale, bkg_scale=bkg_scale)
    pri_out, weights_out, passed = systematics_jit(passing(pri), weights, process, nu, met_noise)
    assert np.all(np.asarray(passed))
    factor = {SIGNAL: 1.0, ZTAUTAU: bkg_scale, TTBAR: ttbar_scale * bkg_scale, DIBOSON: diboson_scale * bkg_scale}
    expected = weights * np.array([factor[p] for p in process], np.float32)
    np.testing.assert_allclose(np.asarray(weights_out), expected, rtol=1e-6)
    nominal, _, _ = systematics_jit(passing(pri), weights, process, NOMINAL_NUISANCES, met_noise)
    np.testing.assert_array_equal(np.asarray(pri_out), np.asarray(nominal))  # kinematics untouched


def test_nominal_nuisances_with_zero_soft_met_change_nothing():
    pri, weights, process, met_noise = pool(6, n=500, jet_pt_min=27.0)
    pri = passing(pri)
    outputs = systematics_jit(pri, weights, process, NOMINAL_NUISANCES, met_noise)
    pri_out, weights_out, passed = (np.asarray(x) for x in outputs)
    assert passed.all()
    np.testing.assert_array_equal(weights_out, weights)
    recomputed = [PRI["PRI_met"], PRI["PRI_met_phi"]]
    kept = np.delete(np.arange(16), recomputed)
    np.testing.assert_array_equal(pri_out[:, kept], pri[:, kept])
    # PRI_met and PRI_met_phi are rebuilt from (x, y): equal up to float32 rounding.
    np.testing.assert_allclose(met_xy(pri_out), met_xy(pri), rtol=1e-6, atol=1e-5)


def test_soft_met_adds_scaled_noise_to_the_met_vector():
    pri, weights, process, met_noise = pool(8)
    pri_out, _, _ = systematics_jit(pri, weights, process, nuisance_vector(soft_met=3.0), met_noise)
    expected = met_xy(pri) + 3.0 * met_noise
    np.testing.assert_allclose(met_xy(np.asarray(pri_out)), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "n_jets, leading, subleading, all_pt, jes, expected",
    [
        (2, 50.0, 30.0, 80.0, 1.0, (2, 50.0, 30.0, 80.0)),
        (2, 27.0, 26.5, 53.5, 1.0, (2, 27.0, 26.5, 53.5)),
        (2, 50.0, 26.0, 76.0, 1.0, (1, 50.0, MISSING, 50.0)),  # pT = 26 GeV is removed
        (3, 50.0, 22.0, 93.0, 1.0, (1, 50.0, MISSING, 50.0)),  # the third jet goes too
        (2, 26.0, 22.0, 48.0, 1.0, (0, MISSING, MISSING, 0.0)),
        (1, 25.0, MISSING, 25.0, 1.0, (0, MISSING, MISSING, 0.0)),
        (0, MISSING, MISSING, 0.0, 1.0, (0, MISSING, MISSING, 0.0)),
        (2, 60.0, 28.0, 88.0, 0.9, (1, 54.0, MISSING, 54.0)),  # JES pushes 28 to 25.2 GeV
        (1, 26.0, MISSING, 26.0, 1.05, (1, 27.3, MISSING, 27.3)),  # and 26 up to 27.3 GeV
    ],
)
def test_jet_removal(n_jets, leading, subleading, all_pt, jes, expected):
    pri = one_event(
        n_jets=n_jets,
        jet_leading_pt=leading,
        jet_leading_eta=1.5 if n_jets >= 1 else MISSING,
        jet_leading_phi=-1.0 if n_jets >= 1 else MISSING,
        jet_subleading_pt=subleading,
        jet_subleading_eta=-2.0 if n_jets >= 2 else MISSING,
        jet_subleading_phi=1.2 if n_jets >= 2 else MISSING,
        jet_all_pt=all_pt,
    )
    pri_out, weights_out, passed = run(pri, nuisance_vector(jes=jes))
    assert passed[0] and weights_out[0] == 1.0  # jets never remove the event
    row = pri_out[0]
    names = ("PRI_n_jets", "PRI_jet_leading_pt", "PRI_jet_subleading_pt", "PRI_jet_all_pt")
    np.testing.assert_allclose([row[PRI[name]] for name in names], expected, rtol=1e-6)
    for jet, exists in (("leading", expected[0] >= 1), ("subleading", expected[0] >= 2)):
        for quantity in ("eta", "phi"):
            value = row[PRI[f"PRI_jet_{jet}_{quantity}"]]
            assert (value != MISSING) if exists else (value == MISSING), (jet, quantity)
    ref_pri, _, _ = ref.apply_systematics(
        pri, np.ones(1), np.array([ZTAUTAU]), nuisance_vector(jes=jes), np.zeros((1, 2))
    )
    np.testing.assert_allclose(row, ref_pri[0], rtol=1e-6)


@pytest.mark.parametrize(
    "had_pt, lep_pt, tes, expected",
    [
        (26.0, 20.0, 1.0, True),  # both boundaries pass
        (25.999, 20.0, 1.0, False),
        (26.0, 19.999, 1.0, False),
        (27.0, 30.0, 0.95, False),  # TES pushes the tau to 25.65 GeV
        (25.0, 30.0, 1.05, True),  # and up to 26.25 GeV
    ],
)
def test_passed_mask_boundaries(had_pt, lep_pt, tes, expected):
    _, weights_out, passed = run(one_event(had_pt=had_pt, lep_pt=lep_pt), nuisance_vector(tes=tes))
    assert passed[0] == expected
    assert weights_out[0] == (1.0 if expected else 0.0)  # failing events get weight 0


@pytest.mark.parametrize(
    "nu", [NOMINAL_NUISANCES, nuisance_vector(tes=1.03, jes=0.97, soft_met=1.5, diboson_scale=1.3)]
)
def test_no_nan_in_values_or_gradients(nu):
    pri, weights, process, met_noise = pool(9)
    pri[0, PRI["PRI_met"]] = 0.0  # zero MET vector at nominal
    pri[1, PRI["PRI_had_phi"]] = pri[1, PRI["PRI_lep_phi"]]
    pri[2, [PRI["PRI_had_phi"], PRI["PRI_met_phi"]]] = pri[2, PRI["PRI_lep_phi"]]
    had, lep = [PRI["PRI_had_eta"], PRI["PRI_had_phi"]], [PRI["PRI_lep_eta"], PRI["PRI_lep_phi"]]
    pri[3, had] = pri[3, lep]  # collinear tau and lepton: zero visible mass
    met_noise[0] = 0.0

    def smooth(nu):
        pri_out, weights_out, _ = apply_systematics(pri, weights, process, nu, met_noise)
        der = derived_features(pri_out)
        weighted = jnp.sum(weights_out[:, None] * jnp.tanh(der / 50.0))
        return weighted + jnp.sum(jnp.tanh(pri_out / 50.0))

    value, grad = jax.jit(jax.value_and_grad(smooth))(jnp.asarray(nu))
    pri_out, weights_out, _ = systematics_jit(pri, weights, process, nu, met_noise)
    assert np.all(np.isfinite(np.asarray(pri_out)))
    assert np.all(np.isfinite(np.asarray(derived_jit(pri_out))))
    assert np.isfinite(value) and np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grad) != 0)  # every nuisance reaches the outputs


def test_vmap_over_nuisances_equals_loop():
    pri, weights, process, _ = pool(10)
    nus = sample_nuisances(jax.random.key(0), 5)
    noises = jax.random.normal(jax.random.key(1), (5, N_EVENTS, 2))
    over_nuisances = jax.jit(jax.vmap(apply_systematics, in_axes=(None, None, None, 0, 0)))
    batched = over_nuisances(pri, weights, process, nus, noises)
    for i in range(5):
        single = systematics_jit(pri, weights, process, nus[i], noises[i])
        for b, s in zip(batched, single):
            np.testing.assert_allclose(np.asarray(b[i]), np.asarray(s), rtol=1e-6, atol=1e-6)


def test_prior_table_follows_schema_order():
    assert tuple(p.name for p in NUISANCE_PRIORS) == NUISANCES


def test_sample_nuisances_moments_and_ranges():
    draws = np.asarray(sample_nuisances(jax.random.key(0), 20000))
    assert draws.shape == (20000, 6) and draws.dtype == np.float32
    for k, prior in enumerate(NUISANCE_PRIORS):
        x = draws[:, k]
        assert prior.low <= x.min() and x.max() <= prior.high, prior.name
        if not prior.lognormal:  # clipping is 4 sigma or more away: plain normal moments
            assert abs(x.mean() - prior.loc) < 4 * prior.scale / np.sqrt(len(x)), prior.name
            assert abs(x.std() / prior.scale - 1) < 0.03, prior.name
    soft_met = draws[:, NUISANCES.index("soft_met")]
    assert abs(np.median(soft_met) - 1.0) < 0.03  # LogNormal(0, 1) has median 1
    assert abs(np.mean(soft_met == 5.0) - 0.0538) < 0.006  # P(exp(z) > 5) = P(z > ln 5)
    assert abs(np.mean(np.log(soft_met[soft_met < 5.0]) < 0) - 0.5 / 0.9462) < 0.015


def test_sampling_is_deterministic_and_independent_of_batch_size():
    key = jax.random.key(42)
    fifty = np.asarray(sample_nuisances(key, 50))
    np.testing.assert_array_equal(np.asarray(sample_nuisances(key, 50)), fifty)
    np.testing.assert_array_equal(np.asarray(sample_nuisances(key, 10)), fifty[:10])
    assert not np.array_equal(np.asarray(sample_nuisances(jax.random.key(43), 50)), fifty)
    np.testing.assert_array_equal(np.asarray(sample_mu(key, 7)), np.asarray(sample_mu(key, 30))[:7])


def test_sample_mu_range_and_moments():
    mu = np.asarray(sample_mu(jax.random.key(0), 20000))
    assert 0.1 <= mu.min() and mu.max() < 3.0
    assert abs(mu.mean() - 1.55) < 0.03 and abs(mu.std() - 2.9 / np.sqrt(12)) < 0.02
    narrow = np.asarray(sample_mu(jax.random.key(0), 100, low=1.0, high=1.5))
    assert 1.0 <= narrow.min() and narrow.max() < 1.5


def test_systematics_numpy_returns_passing_events_with_all_columns():
    pri, weights, process, _ = pool(11, n=300)
    columns = {name: pri[:, i] for i, name in enumerate(PRI_COLUMNS)}
    shifts = dict(tes=1.02, jes=0.98, soft_met=1.0, ttbar_scale=1.1)
    out = systematics_numpy(columns, weights, process, seed=3, **shifts)
    assert set(out) == set(PRI_COLUMNS) | set(DER_COLUMNS) | {"weights", "process"}

    nu = nuisance_vector(**shifts)
    met_noise = jax.random.normal(jax.random.key(3), (300, 2))
    pri_out, weights_out, passed = systematics_jit(pri, weights, process, nu, met_noise)
    keep = np.asarray(passed)
    assert 0 < keep.sum() < 300 and all(len(v) == keep.sum() for v in out.values())
    der = np.asarray(derived_jit(pri_out))[keep]
    for i, name in enumerate(PRI_COLUMNS):
        np.testing.assert_allclose(out[name], np.asarray(pri_out)[keep, i], err_msg=name)
    for i, name in enumerate(DER_COLUMNS):
        np.testing.assert_allclose(out[name], der[:, i], rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(out["weights"], np.asarray(weights_out)[keep], rtol=1e-6)
    np.testing.assert_array_equal(out["process"], process[keep])

    everything = systematics_numpy(columns, weights, process, tes=1.02, dopostprocess=False)
    assert len(everything["weights"]) == 300
    np.testing.assert_array_equal(everything["PRI_n_jets"], pri[:, PRI["PRI_n_jets"]])

    del columns["PRI_met"]
    with pytest.raises(DataFormatError, match="PRI_met"):
        systematics_numpy(columns, weights, process)


# -- the pseudo-experiment fast path: features from per-pool invariants ---------------------------
SHIFTED = [
    NOMINAL_NUISANCES,
    nuisance_vector(tes=1.05, jes=0.93, soft_met=2.0),
    nuisance_vector(tes=0.92, jes=1.08, soft_met=4.5),
]
shifted_jit = jax.jit(lambda pri, noise, nu: shifted_features(pool_invariants(pri, noise), nu))


@pytest.mark.parametrize("nu", SHIFTED, ids=["nominal", "up", "down"])
def test_shifted_features_equal_the_direct_path(nu):
    pri, weights, process, met_noise = pool(5, n=3000)
    pri = np.concatenate([pri, jet_threshold_events()])
    met_noise = np.concatenate([met_noise, np.ones((len(pri) - len(met_noise), 2), np.float32)])
    weights, process = np.ones(len(pri), np.float32), np.zeros(len(pri), np.int32)
    direct, _, passed = systematics_jit(pri, weights, process, nu, met_noise)
    expected = np.concatenate([np.asarray(direct), np.asarray(derived_jit(direct))], axis=1)
    features, fast_passed = (np.asarray(x) for x in shifted_jit(pri, met_noise, nu))
    np.testing.assert_array_equal(fast_passed, np.asarray(passed))
    assert features.shape == (len(pri), len(PRI_COLUMNS) + len(DER_COLUMNS))
    # Jet removal, MISSING values and n_jets are exact; the rest equal within float32 rounding of
    # the MET vector (its phi and what depends on it are ill-conditioned where the MET is tiny).
    for k, name in enumerate(PRI_COLUMNS + DER_COLUMNS):
        np.testing.assert_array_equal(features[:, k] == MISSING, expected[:, k] == MISSING, err_msg=name)
        atol = 2e-3 if name in ("PRI_met_phi", "DER_met_phi_centrality") else 2e-4
        np.testing.assert_allclose(features[:, k], expected[:, k], rtol=2e-6, atol=atol, err_msg=name)
    met = features[:, PRI["PRI_met"]]
    phi_ok = met > 1.0  # GeV: there the MET direction is well conditioned
    for name in ("PRI_met_phi", "DER_met_phi_centrality"):
        k = (PRI_COLUMNS + DER_COLUMNS).index(name)
        np.testing.assert_allclose(features[phi_ok, k], expected[phi_ok, k], atol=2e-5, err_msg=name)


@pytest.mark.parametrize("nu", SHIFTED[1:], ids=["up", "down"])
def test_shifted_features_match_float64_reference(nu):
    pri, weights, process, met_noise = pool(6, n=1500)
    ref_pri, _, ref_passed = ref.apply_systematics(pri, weights, process, nu, met_noise)
    expected = np.concatenate([ref_pri, ref.derived_features(ref_pri)], axis=1)
    features, passed = (np.asarray(x) for x in shifted_jit(pri, met_noise, nu))
    tes, jes = float(nu[0]), float(nu[1])
    near = np.zeros(len(pri), bool)  # float32 and float64 may disagree at a threshold
    for name, scale in [("PRI_had_pt", tes), ("PRI_jet_leading_pt", jes), ("PRI_jet_subleading_pt", jes)]:
        near |= np.abs(pri[:, PRI[name]].astype(np.float64) * scale - 26.0) < 1e-3
    ok = ~near & ref_passed
    np.testing.assert_array_equal(passed[~near], ref_passed[~near])
    assert ok.mean() > 0.2
    for k, name in enumerate(PRI_COLUMNS + DER_COLUMNS):
        # atol in GeV for momenta and masses (and for the ill-conditioned MET phi where the MET is
        # tiny), in rad or unitless otherwise.
        in_gev = any(word in name for word in ("pt", "mass", "met"))
        np.testing.assert_allclose(
            features[ok, k], expected[ok, k], rtol=2e-5, atol=2e-3 if in_gev else 1e-5, err_msg=name
        )


def test_shifted_features_follow_the_challenge_fallbacks_at_degenerate_events():
    from test_derived import degenerate_events

    pri = degenerate_events()
    noise = np.zeros((len(pri), 2), np.float32)
    ones = np.ones(len(pri), np.float32)
    features, _ = shifted_jit(pri, noise, NOMINAL_NUISANCES)
    der = np.asarray(features)[:, len(PRI_COLUMNS) :]
    # The systematics recompute the MET; a zero MET gets phi 0, as in the challenge.
    ref_pri, _, _ = ref.apply_systematics(pri, ones, np.zeros(len(pri), np.int32), NOMINAL_NUISANCES, noise)
    np.testing.assert_allclose(der, ref.derived_features(ref_pri), rtol=1e-5, atol=1e-4)
    assert der[1, DER["DER_met_phi_centrality"]] != MISSING  # rescued by the lepton phi shift
    assert der[2, DER["DER_mass_transverse_met_lep"]] == 0.0  # zero MET


def jet_threshold_events():
    """Events whose jets cross the 26 GeV jet threshold under jes = 0.93 or 1.08."""
    rows = []
    for leading, subleading, n_jets in [(27.0, 25.0, 2), (25.0, 24.0, 2), (27.5, 26.5, 3), (25.5, MISSING, 1)]:
        row = one_event(
            jet_leading_pt=leading,
            jet_subleading_pt=subleading,
            n_jets=float(n_jets),
            jet_all_pt=leading + max(subleading, 0.0) + (20.0 if n_jets == 3 else 0.0),
        )
        if n_jets < 2:
            for quantity in ("pt", "eta", "phi"):
                row[0, PRI[f"PRI_jet_subleading_{quantity}"]] = MISSING
        rows.append(row)
    return np.concatenate(rows)
