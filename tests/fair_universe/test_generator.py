"""The embedded FAIR Universe generator: determinism, the stored-data layout and its physics."""

import dataclasses

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxbench.tasks.fair_universe import generator, schema
from jaxbench.tasks.fair_universe.generator import GeneratorConfig

P = schema.PRI
N_EVENTS = 5000
HIGGS_MASS, Z_MASS = 125.0, 91.1876
PERFECT_DETECTOR = dataclasses.replace(
    GeneratorConfig(),
    lepton_pt_resolution=0.0,
    had_pt_resolution=0.0,
    jet_pt_resolution_at_50=0.0,
    jet_pt_resolution_constant=0.0,
    met_soft_sigma=0.0,
)


@pytest.fixture(scope="module")
def events() -> dict[int, np.ndarray]:
    """N_EVENTS stored events of each process, nominal configuration."""
    key = jax.random.key(0)
    return {p: generator.generate_process(key, p, N_EVENTS) for p in range(len(schema.PROCESSES))}


def column(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, P[name]].astype(np.float64)


def visible_mass(x: np.ndarray) -> np.ndarray:
    """Invariant mass of the (massless) lepton and had tau, GeV."""
    lep_pt, had_pt = column(x, "PRI_lep_pt"), column(x, "PRI_had_pt")
    d_eta = column(x, "PRI_lep_eta") - column(x, "PRI_had_eta")
    d_phi = column(x, "PRI_lep_phi") - column(x, "PRI_had_phi")
    return np.sqrt(2.0 * lep_pt * had_pt * (np.cosh(d_eta) - np.cos(d_phi)))


def collinear_mass(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collinear-approximation ττ mass and where it is defined (0 < x_vis < 1, not back to back).

    Solves MET = (1/x_lep − 1) p_T(lep) + (1/x_had − 1) p_T(had); m = m_vis / sqrt(x_lep x_had).
    """
    lep = column(x, "PRI_lep_pt")[:, None] * np.stack(
        [np.cos(column(x, "PRI_lep_phi")), np.sin(column(x, "PRI_lep_phi"))], axis=1
    )
    had = column(x, "PRI_had_pt")[:, None] * np.stack(
        [np.cos(column(x, "PRI_had_phi")), np.sin(column(x, "PRI_had_phi"))], axis=1
    )
    met = column(x, "PRI_met")[:, None] * np.stack(
        [np.cos(column(x, "PRI_met_phi")), np.sin(column(x, "PRI_met_phi"))], axis=1
    )
    det = lep[:, 0] * had[:, 1] - lep[:, 1] * had[:, 0]
    defined = np.abs(det) > 0.2 * np.linalg.norm(lep, axis=1) * np.linalg.norm(had, axis=1)
    det = np.where(defined, det, 1.0)
    r_lep = (met[:, 0] * had[:, 1] - met[:, 1] * had[:, 0]) / det  # 1/x_lep − 1
    r_had = (lep[:, 0] * met[:, 1] - lep[:, 1] * met[:, 0]) / det  # 1/x_had − 1
    defined &= (r_lep > 0) & (r_had > 0)
    return visible_mass(x) * np.sqrt(np.abs((1 + r_lep) * (1 + r_had))), defined


def test_same_key_same_events_and_new_key_new_events():
    n = (50, 60, 70, 80)
    a = generator.generate_pool(jax.random.key(7), n)
    b = generator.generate_pool(jax.random.key(7), n)
    c = generator.generate_pool(jax.random.key(8), n)
    np.testing.assert_array_equal(np.asarray(a.pri), np.asarray(b.pri))
    assert not np.any(np.all(np.asarray(a.pri) == np.asarray(c.pri), axis=1))


def test_events_do_not_depend_on_candidate_batch_size():
    key = jax.random.key(3)
    default = generator.generate_process(key, schema.ZTAUTAU, 3000)
    small = generator.generate_process(key, schema.ZTAUTAU, 3000, candidates_per_round=1 << 12)
    np.testing.assert_allclose(small, default, rtol=1e-5, atol=1e-4)


def test_pool_layout_dtypes_and_weights():
    n = (30, 40, 50, 60)
    pool = generator.generate_pool(jax.random.key(1), n)
    assert pool.pri.shape == (sum(n), len(schema.PRI_COLUMNS)) and pool.pri.dtype == np.float32
    assert pool.weights.dtype == np.float32 and pool.process.dtype == np.int32
    assert np.all(np.isfinite(np.asarray(pool.pri)))
    np.testing.assert_array_equal(np.asarray(pool.process), np.repeat(np.arange(4), n))
    for p, name in enumerate(schema.PROCESSES):
        total = float(np.asarray(pool.weights)[np.asarray(pool.process) == p].sum())
        np.testing.assert_allclose(total, schema.EXPECTED_YIELDS[name], rtol=1e-5)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), process=st.sampled_from(range(len(schema.PROCESSES))))
def test_stored_events_respect_thresholds_acceptance_and_missing_jet_convention(seed, process):
    x = generator.generate_process(jax.random.key(seed), process, 300).astype(np.float64)
    config = GeneratorConfig()
    assert np.all(np.isfinite(x))
    assert np.all(column(x, "PRI_lep_pt") > config.lepton_pt_min)
    assert np.all(column(x, "PRI_had_pt") > config.had_pt_min)
    assert np.all(np.abs(column(x, "PRI_lep_eta")) < config.lepton_eta_max)
    assert np.all(np.abs(column(x, "PRI_had_eta")) < config.had_eta_max)
    phis = x[:, [P[c] for c in schema.PRI_COLUMNS if c.endswith("_phi")]]
    phis = phis[phis != schema.MISSING]  # absent jets
    assert np.all((phis > -np.pi) & (phis <= np.pi))

    n_jets = column(x, "PRI_n_jets")
    all_pt = column(x, "PRI_jet_all_pt")
    np.testing.assert_array_equal(n_jets, np.round(n_jets))
    for rank, name in enumerate(("leading", "subleading")):
        jet = x[:, [P[f"PRI_jet_{name}_{v}"] for v in ("pt", "eta", "phi")]]
        missing = n_jets <= rank
        assert np.all(jet[missing] == schema.MISSING)
        assert np.all(jet[~missing, 0] > config.jet_pt_min)
        assert np.all(np.abs(jet[~missing, 1]) < config.jet_eta_max)
    assert np.array_equal(all_pt == 0, n_jets == 0)
    lead, sub = column(x, "PRI_jet_leading_pt"), column(x, "PRI_jet_subleading_pt")
    two = n_jets >= 2
    assert np.all(lead[two] >= sub[two])
    assert np.all(all_pt[two] >= (lead + sub)[two] * (1 - 1e-6))
    assert np.all(all_pt[n_jets == 1] == lead[n_jets == 1])
    assert np.all(all_pt[n_jets > 2] > (lead + sub)[n_jets > 2] + config.jet_pt_min * (1 - 1e-6))


def test_visible_mass_peaks_below_the_resonance(events):
    # The neutrinos carry a large share of the ττ energy: m_vis sits at roughly 0.5–0.8 of M.
    for process, mass in ((schema.SIGNAL, HIGGS_MASS), (schema.ZTAUTAU, Z_MASS)):
        m_vis = visible_mass(events[process])
        counts, edges = np.histogram(m_vis, bins=40, range=(0.0, 1.6 * mass))
        peak = edges[np.argmax(counts)]
        assert 0.45 * mass < peak < 0.85 * mass
        assert 0.45 * mass < np.median(m_vis) < 0.85 * mass


def test_collinear_mass_reconstructs_h_and_z_masses():
    # With a perfect detector the only error is the collinear approximation itself: < 2% median.
    for process, mass in ((schema.SIGNAL, HIGGS_MASS), (schema.ZTAUTAU, Z_MASS)):
        x = generator.generate_process(jax.random.key(5), process, 10000, PERFECT_DETECTOR)
        m_coll, defined = collinear_mass(x)
        assert defined.mean() > 0.1
        np.testing.assert_allclose(np.median(m_coll[defined]), mass, rtol=0.02)


def test_met_is_larger_in_ttbar_and_diboson_than_in_z(events):
    # Prompt W→ℓν neutrinos carry tens of GeV; Z→ττ neutrinos mostly cancel back to back.
    met = {p: column(x, "PRI_met").mean() for p, x in events.items()}
    assert met[schema.TTBAR] > 1.5 * met[schema.ZTAUTAU]
    assert met[schema.DIBOSON] > 1.5 * met[schema.ZTAUTAU]


def test_michel_sampler_matches_the_analytic_spectrum():
    # Density 2x²(3 − 2x): mean 7/10, variance 0.5333 − 0.49; the mean within 5 standard errors
    # and the CDF 2x³ − x⁴ within the 0.1% Kolmogorov–Smirnov critical distance.
    n = 200_000
    x = np.sort(np.asarray(generator.sample_michel_x(jax.random.key(11), (n,)), np.float64))
    assert 0.0 <= x[0] and x[-1] <= 1.0
    standard_error = np.sqrt((6 / 5 - 4 / 6 - 0.49) / n)
    assert abs(x.mean() - 0.7) < 5 * standard_error
    cdf = 2 * x**3 - x**4
    distance = np.max(np.maximum(np.arange(1, n + 1) / n - cdf, cdf - np.arange(n) / n))
    assert distance < 1.95 / np.sqrt(n)


def test_vbf_signal_has_wider_and_heavier_dijets_than_ggf():
    def dijets(vbf_fraction):
        config = dataclasses.replace(GeneratorConfig(), vbf_fraction=vbf_fraction)
        x = generator.generate_process(jax.random.key(4), schema.SIGNAL, 4000, config)
        x = x[column(x, "PRI_n_jets") >= 2]
        eta1, eta2 = column(x, "PRI_jet_leading_eta"), column(x, "PRI_jet_subleading_eta")
        pt1, pt2 = column(x, "PRI_jet_leading_pt"), column(x, "PRI_jet_subleading_pt")
        d_phi = column(x, "PRI_jet_leading_phi") - column(x, "PRI_jet_subleading_phi")
        m_jj = np.sqrt(2 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(d_phi)))
        return np.abs(eta1 - eta2), m_jj, eta1 * eta2

    vbf_gap, vbf_mjj, vbf_product = dijets(1.0)
    ggf_gap, ggf_mjj, _ = dijets(0.0)
    assert vbf_gap.mean() > ggf_gap.mean() + 1.5
    assert np.median(vbf_mjj) > 2 * np.median(ggf_mjj)
    assert (vbf_product < 0).mean() > 0.8  # tag jets in opposite hemispheres


def test_ttbar_has_the_most_jets_and_z_the_fewest(events):
    mean_jets = {p: column(x, "PRI_n_jets").mean() for p, x in events.items()}
    assert mean_jets[schema.TTBAR] > 2.0
    assert max(mean_jets, key=mean_jets.get) == schema.TTBAR
    assert min(mean_jets, key=mean_jets.get) == schema.ZTAUTAU


def test_config_changes_do_not_recompile():
    key = jax.random.key(2)
    generator.generate_process(key, schema.DIBOSON, 10)
    compiled = generator._candidates._cache_size()
    config = dataclasses.replace(GeneratorConfig(), met_soft_sigma=3.0, vbf_fraction=0.5)
    generator.generate_process(key, schema.DIBOSON, 10, config)
    assert generator._candidates._cache_size() == compiled


def test_bad_arguments_name_what_is_expected():
    with pytest.raises(ValueError, match="ztautau"):
        generator.generate_process(jax.random.key(0), 4, 10)
    with pytest.raises(ValueError, match="one count per process"):
        generator.generate_pool(jax.random.key(0), (10, 10))
