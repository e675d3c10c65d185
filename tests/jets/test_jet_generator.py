"""The embedded jet generator: Pythia 8 + cell detector + FastJet anti-kT 0.8, its seeds, workers and cache.

Pythia runs are tiny (10 jets per class in the fixture, 20 per class in the whole file); the detector response
is checked on synthetic numpy particles against its formula.
"""

import logging
import math
import shutil

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxbench.errors import ConfigError
from jaxbench.records import read_json, write_arrays
from jaxbench.tasks.jets import generator
from jaxbench.tasks.jets.generator import Detector, detector_response
from jaxbench.tasks.jets.schema import Jets, jet_energy_gev, jet_pt_gev

WINDOW = (550.0, 650.0)
N_JETS = 10


# -- numpy references --------------------------------------------------------------------------------------
def eta_phi(p4):
    """Pseudorapidity and azimuth of (..., 4) (E, px, py, pz), float64."""
    p4 = np.asarray(p4, np.float64)
    return np.arcsinh(p4[..., 3] / np.hypot(p4[..., 1], p4[..., 2])), np.arctan2(p4[..., 2], p4[..., 1])


def rapidity(p4):
    p4 = np.asarray(p4, np.float64)
    return 0.5 * np.log((p4[..., 0] + p4[..., 3]) / (p4[..., 0] - p4[..., 3]))


def wrapped(dphi):
    return (dphi + math.pi) % (2 * math.pi) - math.pi


def jet_mass(jets: Jets) -> np.ndarray:
    total = jets.p4.astype(np.float64).sum(axis=1)
    return np.sqrt(np.maximum(total[:, 0] ** 2 - (total[:, 1:] ** 2).sum(axis=1), 0.0))


def particles(pt, eta, phi, mass=0.0):
    """(n, 4) (E, px, py, pz) of particles given pT (GeV), η, φ."""
    pt, eta, phi = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (pt, eta, phi)))
    pz = pt * np.sinh(eta)
    energy = np.sqrt(pt**2 + pz**2 + mass**2)
    return np.stack([energy, pt * np.cos(phi), pt * np.sin(phi), pz], axis=1)


# -- Pythia fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def samples():
    return {process: generator.generate_jets(11, process, N_JETS, WINDOW) for process in ("top", "qcd")}


@pytest.mark.parametrize("process", ["top", "qcd"])
def test_jets_are_in_the_pt_and_eta_window(samples, process):
    jets = samples[process]
    n_constituents = (jets.p4[:, :, 0] > 0).sum(axis=1)
    # The window is applied to FastJet's jet (the E-scheme sum of its cells), and every cell is stored when a
    # jet has fewer than 200: the constituents' sum is the jet up to float32 rounding (relative ~1e-6).
    assert np.all(n_constituents < 200)
    pt = jet_pt_gev(jets)
    assert np.all((pt >= WINDOW[0] * (1 - 1e-5)) & (pt <= WINDOW[1] * (1 + 1e-5))), pt
    eta, _ = eta_phi(jets.p4.astype(np.float64).sum(axis=1))
    assert np.all(np.abs(eta) < 2.0)
    assert jets.p4.shape == (N_JETS, 200, 4) and jets.p4.dtype == np.float32
    np.testing.assert_array_equal(jets.label, np.full(N_JETS, int(process == "top"), np.int32))
    np.testing.assert_array_equal(jets.ttv, np.full(N_JETS, -1, np.int32))


@pytest.mark.parametrize("process", ["top", "qcd"])
def test_constituents_are_pt_ordered_and_zero_padded(samples, process):
    p4 = samples[process].p4.astype(np.float64)
    pt = np.hypot(p4[..., 1], p4[..., 2])
    assert np.all(np.diff(pt, axis=1) <= 1e-4)
    real = p4[..., 0] > 0
    n = real.sum(axis=1)
    np.testing.assert_array_equal(real, np.arange(200)[None, :] < n[:, None])  # zeros only after the particles
    assert np.all(p4[~real] == 0.0) and np.all(n > 5)


@pytest.mark.parametrize("process", ["top", "qcd"])
def test_constituents_lie_within_the_jet_radius(samples, process):
    p4 = samples[process].p4.astype(np.float64)
    total = p4.sum(axis=1)
    y_jet, (_, phi_jet) = rapidity(total), eta_phi(total)
    real = p4[..., 0] > 0
    eta, phi = eta_phi(np.where(real[..., None], p4, 1.0))  # cells are massless: rapidity = η
    dr = np.hypot(eta - y_jet[:, None], wrapped(phi - phi_jet[:, None]))
    # anti-kT merges a particle within R of the axis of the cluster it joins; clusters up to R apart then merge and
    # the axis moves, so a few soft cells end up beyond R (at most 2R). In 600 Pythia jets the largest distance was
    # 0.93 and at most 1.9 % of a jet's pT lay beyond R; constituents of the wrong jet would break both bounds.
    assert np.max(dr[real]) < 2 * 0.8
    pt = np.hypot(p4[..., 1], p4[..., 2])
    assert np.all((pt * (dr > 0.8)).sum(axis=1) < 0.03 * pt.sum(axis=1))
    assert np.mean(dr[real] > 0.8) < 0.01


def test_top_jets_are_heavier_than_qcd_jets(samples):
    top, qcd = np.median(jet_mass(samples["top"])), np.median(jet_mass(samples["qcd"]))
    assert 120.0 < top < 220.0, top
    assert qcd < top - 30.0, (qcd, top)


def test_truth_top_lies_within_the_jet(samples):
    top, qcd = samples["top"], samples["qcd"]
    eta_t, phi_t = eta_phi(top.truth_p4)
    eta_j, phi_j = eta_phi(top.p4.astype(np.float64).sum(axis=1))
    assert np.all(np.hypot(eta_t - eta_j, wrapped(phi_t - phi_j)) < 0.8)
    mass = np.sqrt(np.maximum(top.truth_p4[:, 0].astype(np.float64) ** 2 - (top.truth_p4[:, 1:] ** 2).sum(1), 0))
    assert np.all(np.abs(mass - 172.5) < 25.0), mass  # a top (Breit-Wigner, width 1.4 GeV), not a W or a quark
    assert np.all(qcd.truth_p4 == 0.0)


def test_same_seed_same_jets_other_seed_other_jets(samples):
    counts = []
    again = generator.generate_jets(11, "top", 2, WINDOW, progress=counts.append)
    assert counts[-1] == 2 and counts == sorted(counts)
    for column, reference in zip(again, samples["top"]):
        np.testing.assert_array_equal(column, reference[:2])
    other = generator.generate_jets(12, "top", 2, WINDOW)
    assert not np.array_equal(other.p4, again.p4)


def test_two_workers_give_the_jets_of_one():
    key = jax.random.key(5)
    one = generator.generate_sample(key, 2, WINDOW, workers=1, chunk_size=1)
    two = generator.generate_sample(key, 2, WINDOW, workers=2, chunk_size=1)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    assert sorted(one.label.tolist()) == [0, 0, 1, 1]
    assert np.all(one.truth_p4[one.label == 0] == 0) and np.all(np.abs(one.truth_p4[one.label == 1, 0]) > 0)


def test_energy_binned_sample_fills_every_energy_bin_inside_the_published_window():
    edges = (550.0, 800.0, 1100.0)
    jets, info = generator.generate_energy_binned(jax.random.key(4), 1, edges, WINDOW, workers=1, return_info=True)
    energy, pt = jet_energy_gev(jets), jet_pt_gev(jets)
    assert np.all((pt >= WINDOW[0] * (1 - 1e-5)) & (pt <= WINDOW[1] * (1 + 1e-5)))
    for lo, hi in zip(edges, edges[1:]):
        inside = (energy >= lo * (1 - 1e-5)) & (energy < hi * (1 + 1e-5))
        assert sorted(jets.label[inside].tolist()) == [0, 1], (lo, hi, energy)
    assert info["processes"]["top"]["jets"] == 2 and len(set(info["processes"]["qcd"]["seeds"])) == 2
    with pytest.raises(ConfigError, match="reach"):  # 650 GeV jets at |eta| < 2 stop near 2444 GeV
        generator.generate_energy_binned(jax.random.key(0), 1, (550.0, 3000.0), WINDOW)


def test_chunk_seeds_do_not_depend_on_their_number():
    key = jax.random.key(0)
    few, many = generator.key_seeds(key, 0, 3), generator.key_seeds(key, 0, 50)
    assert few == many[:3] and len(set(many)) == 50
    assert all(1 <= s <= generator.MAX_PYTHIA_SEED for s in many)
    assert generator.key_seeds(key, 1, 3) != few
    assert generator._distinct([7, 7, generator.MAX_PYTHIA_SEED, generator.MAX_PYTHIA_SEED]) == [7, 8, 900_000_000, 1]


@pytest.mark.parametrize(
    "call",
    [
        lambda: generator.generate_jets(0, "top", 1),
        lambda: generator.generate_jets(1, "ttbar", 1),
        lambda: generator.generate_jets(1, "qcd", 1, (650.0, 550.0)),
        lambda: generator.generate_sample(jax.random.key(0), 1, workers=0),
        lambda: generator.generate_energy_binned(jax.random.key(0), 1, energy_edges=(600.0, 550.0)),
        lambda: Detector(cell_size=0.0),
    ],
)
def test_bad_settings_name_the_field(call):
    with pytest.raises(ConfigError, match="seed|process|pt_range|workers|edges|cell_size"):
        call()


def test_sample_params_cover_the_key_and_the_settings():
    base = generator.sample_params("s", jax.random.key(0), 10)
    assert base == generator.sample_params("s", jax.random.key(0), 10)
    for other in (
        generator.sample_params("s", jax.random.key(1), 10),
        generator.sample_params("s", jax.random.key(0), 10, detector=Detector(threshold_gev=0.5)),
        generator.sample_params("s", jax.random.key(0), 10, edges=(550.0, 800.0)),
    ):
        assert other != base and generator.cache_path("/c", other) != generator.cache_path("/c", base)


# -- detector ------------------------------------------------------------------------------------------------
def test_cells_sit_at_grid_centres_and_contain_their_particle():
    detector = Detector(stochastic=0.0, constant=0.0, threshold_gev=0.0)
    rng = np.random.default_rng(0)
    eta, phi = rng.uniform(-4.9, 4.9, 300), rng.uniform(-math.pi, math.pi, 300)
    for e, p in zip(eta, phi):
        cell = detector_response(rng, particles([30.0], [e], [p], mass=0.14), detector)
        assert cell.shape == (1, 4)
        eta_c, phi_c = eta_phi(cell)
        i = (eta_c[0] + detector.eta_max) / detector.cell_size - 0.5
        j = (phi_c[0] + math.pi) / detector.phi_size - 0.5
        assert abs(i - round(i)) < 1e-6 and abs(j - round(j)) < 1e-6
        assert abs(eta_c[0] - e) <= detector.cell_size / 2 + 1e-9
        assert abs(wrapped(phi_c[0] - p)) <= detector.phi_size / 2 + 1e-9
        np.testing.assert_allclose(cell[0, 0], np.sqrt(30.0**2 * np.cosh(e) ** 2 + 0.14**2), rtol=1e-12)
        assert abs(cell[0, 0] ** 2 - (cell[0, 1:] ** 2).sum()) < 1e-6 * cell[0, 0] ** 2  # massless


@given(st.integers(0, 2**31), st.integers(1, 60))
def test_cells_add_up_the_energy_inside_the_acceptance(seed, n):
    detector = Detector(stochastic=0.0, constant=0.0, threshold_gev=0.0)
    rng = np.random.default_rng(seed)
    p4 = particles(rng.exponential(5.0, n), rng.uniform(-6, 6, n), rng.uniform(-math.pi, math.pi, n))
    p4[: n // 3, 1:3] = p4[0, 1:3] * (1 + 1e-4)  # a few particles in one cell
    cells = detector_response(rng, p4, detector)
    eta, _ = eta_phi(p4)
    np.testing.assert_allclose(cells[:, 0].sum(), p4[np.abs(eta) < 5.0, 0].sum(), rtol=1e-10)
    assert cells.shape[0] <= np.sum(np.abs(eta) < 5.0)


@pytest.mark.parametrize("energy", [25.0, 400.0])
def test_energy_smearing_width_follows_the_resolution_formula(energy):
    detector = Detector(threshold_gev=0.0)
    n = 20_000  # one particle per cell: distinct (η, φ) cell centres
    i, j = np.divmod(np.arange(n), detector.n_phi)
    eta = -detector.eta_max + (i + 0.5) * detector.cell_size
    phi = -math.pi + (j + 0.5) * detector.phi_size
    p4 = particles(energy / np.cosh(eta), eta, phi)
    cells = detector_response(np.random.default_rng(1), p4, detector)
    assert cells.shape == (n, 4)
    ratio = cells[:, 0] / energy
    expected = math.sqrt(0.5**2 / energy + 0.05**2)  # σ/E = 50 %/√E ⊕ 5 %
    # the sample standard deviation of 20,000 Gaussians has a relative error of 1/√(2n) = 0.5 %
    assert abs(ratio.std() / expected - 1) < 0.03, (ratio.std(), expected)
    assert abs(ratio.mean() - 1) < 4 * expected / math.sqrt(n)


def test_threshold_and_acceptance_drop_cells():
    detector = Detector(stochastic=0.0, constant=0.0, threshold_gev=1.0)
    p4 = particles([0.5, 2.0, 50.0], [0.1, -1.0, 5.5], [0.0, 1.0, 2.0])
    cells = detector_response(np.random.default_rng(0), p4, detector)
    assert cells.shape == (1, 4)
    np.testing.assert_allclose(cells[0, 0], 2.0 * np.cosh(-1.0), rtol=1e-12)


# -- cache -----------------------------------------------------------------------------------------------------
def _fake_jets(n=6, p=5):
    rng = np.random.default_rng(n)
    return Jets(
        rng.normal(size=(n, p, 4)).astype(np.float32),
        (np.arange(n) % 2).astype(np.int32),
        rng.normal(size=(n, 4)).astype(np.float32),
        np.full(n, -1, np.int32),
    )


def test_cache_returns_stored_jets_without_making_them_again(tmp_path):
    calls = []

    def make():
        calls.append(1)
        return _fake_jets(), {"seeds": [3, 4]}

    params = {"name": "tiny", "n_per_class": 3, "pt_range": (550.0, 650.0)}
    first = generator.cached(tmp_path, params, make)
    second = generator.cached(tmp_path, params, make)
    assert len(calls) == 1
    for a, b, c in zip(first, second, _fake_jets()):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
        assert a.dtype == b.dtype
    path = generator.cache_path(tmp_path, params)
    card = read_json(path / "datacard.json")
    assert card["num_jets"] == 6 and card["num_top"] == 3 and card["info"]["seeds"] == [3, 4]
    assert card["params"]["pt_range"] == [550.0, 650.0] and card["pythia8mc"] and card["fastjet"]
    assert generator.cache_path(tmp_path, {**params, "n_per_class": 4}) != path
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


@pytest.mark.parametrize("damage", ["datacard", "array", "shape"])
def test_cache_makes_a_damaged_entry_again(tmp_path, caplog, damage):
    params = {"name": "tiny"}
    generator.cached(tmp_path, params, lambda: _fake_jets(6))
    path = generator.cache_path(tmp_path, params)
    if damage == "datacard":
        (path / "datacard.json").unlink()
    elif damage == "array":
        shutil.rmtree(path / "arrays" / "label")
    else:
        write_arrays(path / "arrays", _fake_jets(4)._asdict())  # 4 jets, the datacard says 6
    calls = []
    with caplog.at_level(logging.WARNING, logger=generator.__name__):
        jets = generator.cached(tmp_path, params, lambda: calls.append(1) or _fake_jets(6))
    assert calls == [1] and "generating it again" in caplog.text
    np.testing.assert_array_equal(jets.p4, _fake_jets(6).p4)
    np.testing.assert_array_equal(generator.cached(tmp_path, params, _fake_jets).p4, _fake_jets(6).p4)
