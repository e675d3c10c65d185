"""ParT inputs: the conversion script's particle features, weaver-core's pair features, symmetries, padding.

References (float64) are in tests/reference/jets_reference.py: awkward + vector on jagged arrays as
``convert_top_datasets.py`` and ``top_kin.yaml`` do, and ``pairwise_lv_fts_pp`` in numpy.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference.jets_reference import (
    jet_kinematics_reference,
    pair_features_reference,
    particle_features_reference,
    random_jets,
)

from jaxbench.errors import DataFormatError
from jaxbench.tasks.jets import features

SLOTS, FED = 40, 32  # jets with up to 40 constituents, the leading 32 fed (truncation is exercised)
JETS = random_jets(np.random.default_rng(7), 12, SLOTS, max_real=SLOTS, min_particles=3)


def _padded(p4, slots):
    out = np.zeros((p4.shape[0], slots, 4), np.float32)
    out[:, : p4.shape[1]] = p4
    return out


def test_particle_features_match_the_conversion_script():
    x, mask = features.particle_features(JETS, FED)
    x_ref, mask_ref = particle_features_reference(JETS, FED)
    np.testing.assert_array_equal(np.asarray(mask), mask_ref)
    # float32 inputs, float32 logs/angles: 1e-5 absolute on O(1) standardised values
    np.testing.assert_allclose(np.asarray(x), x_ref, rtol=0, atol=1e-5)
    assert np.all(np.asarray(x)[~mask_ref] == 0)


def test_jet_kinematics_match_vector():
    got = features.jet_kinematics(JETS)
    ref = jet_kinematics_reference(JETS)
    for name in ("pt", "eta", "mass", "energy"):
        # float32 sums: m² = E² - |p|² loses (E/m)² ~ 10³ in relative precision at η ~ 2, so 2e-4 on the mass
        np.testing.assert_allclose(np.asarray(got[name]), ref[name], rtol=2e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(np.angle(np.exp(1j * (np.asarray(got["phi"]) - ref["phi"]))), 0, atol=1e-5)


def test_pair_features_match_weaver_core():
    p4 = JETS[:, :FED]
    got = np.asarray(features.pair_features(p4))
    ref = pair_features_reference(p4)
    real = p4[..., 0] > 0
    both = real[:, :, None] & real[:, None, :]
    off = both & ~np.eye(FED, dtype=bool)[None]
    # ln kT, ln z, ln Δ: float32 rapidities of close pairs (Δ ~ 1e-3) limit ln Δ to ~1e-3
    np.testing.assert_allclose(got[off][:, :3], ref[off][:, :3], rtol=0, atol=2e-3)
    # ln m²: the float32 inputs fix m² to ~1e-7 (E_a + E_b)²; compare where m² is resolved
    energy = p4[..., 0].astype(np.float64)
    resolved = off & (np.exp(ref[..., 3]) > 1e-4 * (energy[:, :, None] + energy[:, None, :]) ** 2)
    assert resolved.sum() > 0.5 * off.sum()
    np.testing.assert_allclose(got[resolved][:, 3], ref[resolved][:, 3], rtol=0, atol=1e-2)
    # self-pairs: Δ = 0 hits the published floor; z = 1/2
    diagonal = np.einsum("nii->ni", both)
    self_pairs = np.einsum("niif->nif", got)[diagonal]
    np.testing.assert_allclose(self_pairs[:, 2], math.log(features.PAIR_EPS), rtol=1e-6)
    np.testing.assert_allclose(self_pairs[:, 1], math.log(0.5), rtol=1e-6)
    assert np.all(got[~both] == 0)
    np.testing.assert_allclose(got, np.swapaxes(got, 1, 2), atol=1e-5)  # symmetric in (a, b)


@given(angle=st.floats(-2 * math.pi, 2 * math.pi, allow_nan=False))
def test_physics_features_are_invariant_under_rotation_about_the_beam(angle):
    p4 = JETS[:4]
    turned = features.rotate_about_beam(p4, angle)
    x, mask = features.particle_features(p4, FED)
    x_turned, mask_turned = features.particle_features(turned, FED)
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(mask_turned))
    np.testing.assert_allclose(np.asarray(x_turned), np.asarray(x), atol=2e-5)
    pairs, pairs_turned = features.pair_features(p4[:, :FED]), features.pair_features(turned[:, :FED])
    np.testing.assert_allclose(np.asarray(pairs_turned), np.asarray(pairs), atol=2e-3)  # as the reference test


def test_raw_features_are_the_scaled_momenta_and_not_rotation_invariant():
    raw, mask = features.raw_features(JETS, FED)
    np.testing.assert_allclose(np.asarray(raw), JETS[:, :FED] / features.RAW_SCALE_GEV, rtol=1e-6)
    turned, _ = features.raw_features(features.rotate_about_beam(JETS, 0.7), FED)
    assert np.abs(np.asarray(turned) - np.asarray(raw)).max() > 0.1  # what "no physics prior" gives up


def test_rotation_turns_phi_and_keeps_the_rest():
    angle = np.linspace(-3, 3, JETS.shape[0]).astype(np.float32)  # one angle per jet
    before = features.jet_kinematics(JETS)
    after = features.jet_kinematics(features.rotate_about_beam(JETS, angle))
    shift = np.angle(np.exp(1j * (np.asarray(after["phi"]) - np.asarray(before["phi"]) - angle)))
    np.testing.assert_allclose(shift, 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(after["mass"]), np.asarray(before["mass"]), rtol=1e-4)
    back = features.rotate_about_beam(features.rotate_about_beam(JETS, angle), -angle)
    np.testing.assert_allclose(np.asarray(back), JETS, atol=1e-3)
    assert np.all(np.asarray(back)[JETS[..., 0] == 0] == 0)


def test_mirroring_the_beam_axis_leaves_the_features_unchanged():
    # Δη carries the sign of the jet's η (convert_top_datasets.py), so pz -> -pz changes nothing.
    mirrored = JETS * np.array([1, 1, 1, -1], np.float32)
    x, _ = features.particle_features(JETS, FED)
    x_mirrored, _ = features.particle_features(mirrored, FED)
    np.testing.assert_allclose(np.asarray(x_mirrored), np.asarray(x), atol=1e-5)


def test_padding_and_empty_jets_give_zeros():
    p4 = _padded(JETS[:3, :5], FED)
    p4[2] = 0.0  # an empty jet
    x, mask = features.particle_features(p4, FED)
    pairs = features.pair_features(p4)
    assert np.asarray(mask).sum(1).tolist() == [5, 5, 0]
    assert np.all(np.isfinite(np.asarray(x))) and np.all(np.isfinite(np.asarray(pairs)))
    assert np.all(np.asarray(x)[:, 5:] == 0) and np.all(np.asarray(pairs)[:, 5:] == 0)
    assert np.all(np.asarray(pairs)[:, :, 5:] == 0) and np.all(np.asarray(x)[2] == 0)
    # extra padding slots leave the features of the real particles alone
    x_short, _ = features.particle_features(p4[:, :5], 5)
    np.testing.assert_allclose(np.asarray(x)[:, :5], np.asarray(x_short), atol=1e-6)  # other shapes fuse otherwise


def test_bad_shapes_name_the_fix():
    with pytest.raises(DataFormatError, match=r"p4\[None\]"):
        features.particle_features(JETS[0], FED)
    with pytest.raises(DataFormatError, match="expected"):
        features.pair_features(JETS[..., :3])


def test_self_pair_mass_is_the_particle_mass_or_the_floor_when_massless():
    # (E, px, py, pz): a massless particle, and a 0.5 GeV one at 20 GeV (m/E well above float32 resolution)
    momentum = np.array([3.0, 4.0, 12.0])
    massive = np.array([19.8, 5.0, 8.0, 10.0])
    massive[0] = math.sqrt(0.25 + np.sum(massive[1:] ** 2))
    p4 = np.array([[[13.0, *momentum], massive]], np.float32)
    got = np.asarray(features.pair_features(p4))[0]
    assert got[0, 0, 3] == pytest.approx(math.log(features.PAIR_EPS))
    assert got[1, 1, 3] == pytest.approx(pair_features_reference(p4)[0, 1, 1, 3], abs=2e-3)  # ln(4 m²)
    assert got[1, 1, 3] == pytest.approx(math.log(4 * 0.25), abs=2e-3)
