"""SOAP in JAX (tasks.mlff.soap) against dscribe 2.1.2, and the invariances a descriptor must have.

Reference settings: r_cut 5 Å, n_max 8, l_max 6, sigma 0.5 Å, species H, C, O, GTO radial basis.
Frames: the shipped aspirin and ethanol minima displaced by Gaussian noise of 0.02-0.5 Å per
coordinate, every other frame also rotated and translated. Tests run in float32 (JAX's default).

Tolerances (measured values in brackets):
- dscribe's own cutoff (``smooth_cutoff=False``): descriptors equal dscribe's vectors feature by
  feature, max |Δp| / max |p| < 2e-6 [4e-7 per-atom, 6e-7 inner average]; < 1e-8 in float64
  [1e-10].
- default smooth cutoff, kernel K_ij = (p̂_i · p̂_j)² of outer-averaged descriptors, off-diagonal:
  max |ΔK| < 2e-3 [5.4e-4 aspirin, 5e-6 ethanol], Pearson r > 0.9999 [1 - 1.2e-6].
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from dscribe.descriptors import SOAP as DscribeSOAP
from hypothesis import given
from hypothesis import strategies as st

from jaxbench.errors import ConfigError
from tasks.mlff import soap
from tasks.mlff.geometries import starting_geometry
from tasks.mlff.graph import pad_atoms

CONFIG = soap.SoapConfig(r_cut=5.0, n_max=8, l_max=6, sigma=0.5, species=(1, 6, 8))
HARD = soap.SoapConfig(r_cut=5.0, n_max=8, l_max=6, sigma=0.5, species=(1, 6, 8), smooth_cutoff=False)
AMPLITUDES = np.geomspace(0.02, 0.5, 6)  # Å, Gaussian noise per coordinate

per_atom = jax.jit(partial(soap.soap_power_spectrum, CONFIG))
per_atom_hard_frames = jax.jit(jax.vmap(partial(soap.soap_power_spectrum, HARD), in_axes=(None, 0)))
average = jax.jit(partial(soap.average_soap, CONFIG))
# One batch size throughout, so every describe call of a molecule reuses one compiled program.
describe = partial(soap.describe_frames, batch=8)


def dscribe_soap(average_mode: str):
    return DscribeSOAP(r_cut=5.0, n_max=8, l_max=6, sigma=0.5, species=[1, 6, 8], rbf="gto", average=average_mode)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))[None, :]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def displaced_frames(molecule: str, seed: int = 7, per_amplitude: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(species, frames (F, N, 3) Å, amplitude of each frame): noise, and every other frame turned."""
    species, positions = starting_geometry(molecule)
    rng = np.random.default_rng(seed)
    amplitude = np.repeat(AMPLITUDES, per_amplitude)
    frames = positions[None] + rng.normal(size=(amplitude.size, *positions.shape)) * amplitude[:, None, None]
    for k in range(0, amplitude.size, 2):
        frames[k] = frames[k] @ random_rotation(rng).T + rng.normal(size=3)
    return species, frames, amplitude


def unit_kernel(descriptors: np.ndarray, zeta: int = 2) -> np.ndarray:
    """Reference kernel matrix in float64 numpy."""
    unit = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
    return (unit @ unit.T) ** zeta


def relative_error(value, reference) -> float:
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(value - reference)) / np.max(np.abs(reference)))


@pytest.fixture(scope="module")
def aspirin_frames():
    return displaced_frames("aspirin")


@pytest.fixture(scope="module")
def ethanol_frames():
    return displaced_frames("ethanol")


# -- dscribe -----------------------------------------------------------------------------------
def test_feature_count_matches_dscribe():
    assert CONFIG.num_features == dscribe_soap("off").get_number_of_features() == 2100


def test_gto_basis_matches_dscribe():
    alphas, betas = soap.gto_radial_basis(CONFIG)
    reference = dscribe_soap("off")
    np.testing.assert_allclose(alphas, reference._alphas, rtol=1e-12)
    np.testing.assert_allclose(betas, reference._betas, rtol=0, atol=1e-7 * np.abs(reference._betas).max())


@pytest.mark.parametrize("molecule", ["aspirin", "ethanol"])
def test_per_atom_descriptor_is_dscribes_vector(molecule):
    """With dscribe's cutoff, every feature of every atom equals dscribe's, in dscribe's order."""
    species, frames, _ = displaced_frames(molecule, seed=3, per_amplitude=1)
    reference = dscribe_soap("off").create([Atoms(numbers=species, positions=f) for f in frames])
    ours = per_atom_hard_frames(species, frames)
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) < 2e-6


def test_float64_descriptor_equals_dscribe_to_1e8(aspirin_frames):
    """In float64 the only differences left are the radial table (~1e-9) and rounding."""
    species, frames, _ = aspirin_frames
    chosen = frames[::6]
    reference = dscribe_soap("off").create([Atoms(numbers=species, positions=f) for f in chosen])
    with jax.enable_x64(True):
        ours = jax.jit(jax.vmap(partial(soap.soap_power_spectrum, HARD), in_axes=(None, 0)))(species, chosen)
        assert ours.dtype == jnp.float64
        assert relative_error(ours, reference) < 1e-8


def test_power_spectrum_of_coefficients_is_the_per_atom_spectrum(ethanol_frames):
    species, frames, _ = ethanol_frames
    via_coefficients = jax.jit(lambda x: soap.power_spectrum(CONFIG, soap.density_coefficients(CONFIG, species, x)))
    coefficients = jax.jit(partial(soap.density_coefficients, CONFIG))(species, frames[2])
    assert coefficients.shape == (9, 3, CONFIG.n_max, (CONFIG.l_max + 1) ** 2)
    assert relative_error(via_coefficients(frames[2]), per_atom(species, frames[2])) < 1e-6


def test_inner_average_is_dscribes_inner_average(aspirin_frames):
    species, frames, _ = aspirin_frames
    reference = dscribe_soap("inner").create([Atoms(numbers=species, positions=f) for f in frames[::4]])
    ours = describe(HARD, species, frames[::4], average="inner")
    assert relative_error(ours, reference) < 2e-6


@pytest.mark.parametrize("molecule", ["aspirin", "ethanol"])
def test_frame_kernels_agree_with_dscribe(molecule, aspirin_frames, ethanol_frames):
    """Default (smooth-cutoff) outer-average kernels against dscribe's average="outer" kernels."""
    species, frames, _ = aspirin_frames if molecule == "aspirin" else ethanol_frames
    reference = unit_kernel(dscribe_soap("outer").create([Atoms(numbers=species, positions=f) for f in frames]))
    ours = np.asarray(soap.kernel_matrix(*(2 * [describe(CONFIG, species, frames)])), np.float64)
    off_diagonal = ~np.eye(len(frames), dtype=bool)
    assert np.std(reference[off_diagonal]) > 0.01, "the frames must span a range of similarities"
    assert np.max(np.abs(ours - reference)[off_diagonal]) < 2e-3
    assert np.corrcoef(ours[off_diagonal], reference[off_diagonal])[0, 1] > 0.9999


# -- invariances -------------------------------------------------------------------------------
@given(seed=st.integers(0, 2**31 - 1))
def test_descriptor_is_rotation_and_translation_invariant(seed, aspirin_frames):
    species, frames, _ = aspirin_frames
    rng = np.random.default_rng(seed)
    frame = frames[rng.integers(len(frames))]
    moved = frame @ random_rotation(rng).T + rng.normal(size=3) * 3.0
    before, after = per_atom(species, frame), per_atom(species, moved)
    assert relative_error(after, before) < 1e-5


def test_descriptor_is_inversion_invariant(aspirin_frames):
    species, frames, _ = aspirin_frames
    assert relative_error(per_atom(species, -frames[5]), per_atom(species, frames[5])) < 1e-5


@given(seed=st.integers(0, 2**31 - 1))
def test_average_soap_is_permutation_invariant(seed, aspirin_frames):
    species, frames, _ = aspirin_frames
    rng = np.random.default_rng(seed)
    frame = frames[rng.integers(len(frames))]
    order = rng.permutation(species.size)
    assert relative_error(average(species[order], frame[order]), average(species, frame)) < 1e-5
    # Per-atom spectra follow their atoms.
    assert relative_error(per_atom(species[order], frame[order]), per_atom(species, frame)[order]) < 1e-5


def test_padding_atoms_change_nothing(aspirin_frames):
    species, frames, _ = aspirin_frames
    padded_species, padded = pad_atoms(species, frames[3], species.size + 3)
    assert relative_error(average(padded_species, padded), average(species, frames[3])) < 1e-6
    rows = per_atom(padded_species, padded)
    assert np.all(np.asarray(rows[species.size :]) == 0.0)


def test_gradients_are_finite_with_padding(aspirin_frames):
    """Self terms (r = 0) and padding atoms stacked at the origin must not give NaN forces."""
    species, frames, _ = aspirin_frames
    padded_species, padded = pad_atoms(species, frames[3], species.size + 2)
    small = soap.SoapConfig(n_max=3, l_max=2)  # same code paths, a quicker compile
    grad = jax.jit(jax.grad(lambda x: jnp.sum(soap.average_soap(small, padded_species, x) ** 2)))(padded)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert np.any(np.asarray(grad[: species.size]) != 0.0)


# -- cutoff ------------------------------------------------------------------------------------
def probe_sweep(config: soap.SoapConfig, distances: np.ndarray) -> np.ndarray:
    """C-centred spectra (len(distances), D) with an H probe at each distance along x and an O fixed."""
    species = np.array([6, 8, 1], np.int32)
    frames = np.zeros((distances.size, 3, 3))
    frames[:, 1] = [0.0, 1.2, 0.0]
    frames[:, 2, 0] = distances
    spectra = jax.jit(jax.vmap(partial(soap.soap_power_spectrum, config), in_axes=(None, 0)))(species, frames)
    return np.asarray(spectra[:, 0], np.float64)


def test_descriptor_is_continuous_where_an_atom_leaves_the_cutoff():
    """Steps of 1e-3 Å from r_cut - 0.3 Å to past r_cut + padding: with the smooth cutoff no step
    changes the descriptor more than the steps well inside (where the probe simply moves), and the
    steps at r_cut + padding are ~0; dscribe's hard cut shows up as a jump there (so this can fail)."""
    step = 1e-3
    distances = np.arange(CONFIG.r_cut - 0.3, CONFIG.outer_cutoff + 0.3, step)
    near_edge = np.abs(distances[:-1] - CONFIG.outer_cutoff) < 0.01
    for config, expect_jump in ((CONFIG, False), (HARD, True)):
        spectra = probe_sweep(config, distances)
        jumps = np.linalg.norm(np.diff(spectra, axis=0), axis=1) / np.linalg.norm(spectra[0])
        inside = jumps[:50].max()  # ≈ 1.1e-4: the probe moving 1e-3 Å at r_cut - 0.3 Å
        if expect_jump:
            assert jumps.max() > 4.0 * inside  # ≈ 8.9e-4 at the cut
            assert abs(distances[np.argmax(jumps)] - config.outer_cutoff) < 2 * step
        else:
            assert jumps.max() <= 1.05 * inside
            assert jumps[near_edge].max() < 1e-6
            # Past the outer cutoff the probe has no effect at all.
            np.testing.assert_array_equal(spectra[-1], spectra[-100])


def test_descriptor_slope_vanishes_at_the_outer_cutoff():
    """C¹: d(descriptor)/d(distance) goes to 0 as the probe reaches r_cut + padding."""
    species = jnp.array([6, 8, 1], jnp.int32)

    def spectrum(distance):
        frame = jnp.array([[0.0, 0.0, 0.0], [0.0, 1.2, 0.0], [0.0, 0.0, 0.0]]).at[2, 0].set(distance)
        return soap.soap_power_spectrum(CONFIG, species, frame)[0]

    slope = jax.jit(jax.jacfwd(spectrum))
    inside = np.linalg.norm(slope(CONFIG.r_cut + 0.5 * CONFIG.cutoff_padding))
    edge = np.linalg.norm(slope(CONFIG.outer_cutoff - 1e-3))
    assert inside > 0.0 and np.isfinite(inside)
    assert edge < 1e-3 * inside


# -- kernels and windows -----------------------------------------------------------------------
def test_kernel_of_a_frame_with_itself_is_one(aspirin_frames):
    species, frames, _ = aspirin_frames
    descriptors = describe(CONFIG, species, frames)
    for p in descriptors[::5]:
        assert abs(float(soap.frame_kernel(p, p)) - 1.0) < 1e-5
        assert abs(float(soap.frame_kernel(p, 3.0 * p, zeta=3)) - 1.0) < 1e-5
    # float32 dot products of 2100 features: ~3e-6 rounding on the diagonal.
    kernel = np.asarray(soap.kernel_matrix(descriptors, descriptors))
    np.testing.assert_allclose(np.diag(kernel), 1.0, atol=1e-5)
    assert np.all(kernel <= 1.0 + 1e-5) and np.all(kernel > 0.0)
    assert np.max(kernel[~np.eye(len(kernel), dtype=bool)]) < 1.0 - 1e-5


def test_describe_frames_does_not_depend_on_batch(aspirin_frames):
    species, frames, _ = aspirin_frames
    whole = describe(CONFIG, species, frames[:10])
    ragged = describe(CONFIG, species, frames[:10], batch=3)
    assert whole.shape == (10, CONFIG.num_features)
    assert relative_error(ragged, whole) < 2e-6
    assert relative_error(whole[7], average(species, frames[7])) < 2e-6


def test_window_similarity_is_the_mean_kernel_whatever_the_chunk(aspirin_frames):
    species, frames, _ = aspirin_frames
    descriptors = describe(CONFIG, species, frames)
    a, b = descriptors[:17], descriptors[9:]
    expected = np.mean(unit_kernel(np.asarray(descriptors, np.float64))[:17, 9:])
    for chunk in (1, 5, 17, 512):
        assert abs(float(soap.window_similarity(a, b, chunk=chunk)) - expected) < 1e-5
    assert abs(float(soap.window_similarity(a, b)) - float(soap.window_similarity(b, a))) < 1e-5


def test_windows_of_the_same_frames_have_similarity_one(aspirin_frames):
    species, frames, _ = aspirin_frames
    descriptors = describe(CONFIG, species, frames)
    copies = np.repeat(descriptors[:1], 6, axis=0)
    assert abs(float(soap.window_similarity(copies, copies)) - 1.0) < 1e-5
    window = descriptors[:12]
    shuffled = window[np.random.default_rng(0).permutation(12)]
    assert abs(float(soap.window_similarity(window, shuffled, normalize=True)) - 1.0) < 1e-5
    assert float(soap.window_similarity(window, shuffled)) < 1.0 - 1e-3  # spread within the window
    assert float(soap.window_similarity(window, descriptors[12:], normalize=True)) < 1.0 - 1e-4


def test_similarity_falls_as_displacement_grows():
    """Windows of frames displaced further from the minimum look less like a window near it."""
    species, minimum = starting_geometry("aspirin")
    rng = np.random.default_rng(11)
    test_window = minimum[None] + 0.01 * rng.normal(size=(8, *minimum.shape))
    amplitudes = [0.02, 0.05, 0.1, 0.2, 0.5]
    windows = [minimum[None] + a * rng.normal(size=(8, *minimum.shape)) for a in amplitudes]
    descriptors = describe(CONFIG, species, np.concatenate([test_window, *windows]))
    test_soap = descriptors[:8]
    similarity = [float(soap.window_similarity(descriptors[8 * k : 8 * (k + 1)], test_soap)) for k in range(1, 6)]
    assert np.all(np.diff(similarity) < 0.0), similarity
    frame_similarity = [float(soap.frame_kernel(descriptors[8 * k], test_soap[0])) for k in range(1, 6)]
    assert np.all(np.diff(frame_similarity) < 0.0), frame_similarity


# -- errors for people -------------------------------------------------------------------------
def test_unknown_species_is_refused_with_the_fix():
    species, positions = starting_geometry("ethanol")
    with pytest.raises(ConfigError, match=r"\[7\].*SoapConfig.species"):
        describe(CONFIG, np.where(species == 8, 7, species), positions[None])


@pytest.mark.parametrize("field", [{"r_cut": 0.9}, {"sigma": 0.0}, {"n_max": 0}, {"l_max": -1}, {"species": (0, 1)}])
def test_bad_config_is_refused(field):
    with pytest.raises(ConfigError):
        soap.SoapConfig(**field)


def test_zeta_must_be_a_positive_integer():
    p = jnp.ones(4)
    with pytest.raises(ConfigError, match="zeta"):
        soap.frame_kernel(p, p, zeta=0.5)
