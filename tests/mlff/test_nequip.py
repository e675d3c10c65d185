"""NequIP model: symmetry, forces as energy gradients, padding safety, smoothness, compile-once.

The labels come from an analytic Morse pair potential on a 9-atom molecule (ethanol, C2H6O),
written here in float64 numpy: :func:`morse_frames` is also imported by test_training.py.
"""

import chex
import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench.errors import ConfigError
from jaxbench.tasks.mlff import graph, nequip
from jaxbench.tasks.mlff.training import Frames, TrainSettings, loss_terms

# Ethanol, Å (G2 geometry); atoms: C C O H(O) H H H H H.
ETHANOL_SPECIES = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1], dtype=np.int32)
ETHANOL_POSITIONS = np.array(
    [
        [1.168181, -0.400382, 0.000000],
        [0.000000, 0.559462, 0.000000],
        [-1.190083, -0.227669, 0.000000],
        [-1.946623, 0.381525, 0.000000],
        [0.042557, 1.207508, 0.886933],
        [0.042557, 1.207508, -0.886933],
        [2.115891, 0.144800, 0.000000],
        [1.128599, -1.037234, 0.885881],
        [1.128599, -1.037234, -0.885881],
    ]
)
# Morse well depth per element (eV); a pair uses the geometric mean. Width a = 1.8 / Å.
_DEPTH = {1: 0.25, 6: 0.6, 8: 0.5}
_WIDTH = 1.8


def morse_energy_forces(species, positions, reference):
    """Morse energies (eV) and analytic forces (eV/Å), all pairs, minima at the reference distances.

    Shapes: species (N,), positions (F, N, 3), reference (N, 3) -> (F,), (F, N, 3). float64.
    """
    n = species.shape[0]
    off = ~np.eye(n, dtype=bool)
    depth = np.sqrt(np.array([_DEPTH[z] for z in species])[:, None] * np.array([_DEPTH[z] for z in species])[None, :])
    r0 = np.linalg.norm(reference[:, None] - reference[None] + np.eye(n)[:, :, None], axis=-1)
    d = positions[:, :, None, :] - positions[:, None, :, :]  # x_i - x_j
    r = np.linalg.norm(d + np.eye(n)[None, :, :, None], axis=-1)
    decay = np.exp(-_WIDTH * (r - r0[None]))
    pair = np.where(off[None], depth[None] * (1 - decay) ** 2, 0.0)
    energy = 0.5 * np.sum(pair, axis=(1, 2)) - 250.0  # an offset like a total electronic energy
    de_dr = np.where(off[None], 2 * depth[None] * _WIDTH * decay * (1 - decay), 0.0)
    forces = -np.sum(de_dr[..., None] * d / r[..., None], axis=2)
    return energy, forces


def morse_frames(seed: int, num_frames: int, sigma: float = 0.1) -> Frames:
    """Ethanol frames with Gaussian displacements (``sigma`` Å) labelled by the Morse potential."""
    rng = np.random.default_rng(seed)
    positions = ETHANOL_POSITIONS[None] + sigma * rng.normal(size=(num_frames, 9, 3))
    energy, forces = morse_energy_forces(ETHANOL_SPECIES, positions, ETHANOL_POSITIONS)
    return Frames(ETHANOL_SPECIES, positions, energy, forces)


def random_orthogonal(rng, proper: bool) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))[None, :]
    if (np.linalg.det(q) > 0) != proper:
        q = q * np.array([-1.0, 1.0, 1.0])[None, :]
    return q


# An l_max = 2 model so that every kind of tensor-product path is exercised; fitted shift/scale
# would hide errors in the relative energy test, so shift is 0 and scale is the force RMS.
SYMMETRY_CONFIG = nequip.NequipConfig(l_max=2, channels=8, layers=3, radial_hidden=16)


@pytest.fixture(scope="module")
def frames():
    return morse_frames(0, 8)


@pytest.fixture(scope="module")
def params(frames):
    p = nequip.init(jax.random.key(1), SYMMETRY_CONFIG, frames.species, frames.positions)
    return p.replace(species_scale=jnp.full(SYMMETRY_CONFIG.num_species, 0.9, jnp.float32))


def _relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "rotoreflection"])
def test_energy_is_invariant_and_forces_equivariant_under_orthogonal_maps_and_translations(params, frames, proper):
    rng = np.random.default_rng(2 + proper)
    energy, forces = nequip.energy_and_forces(params, frames.species, frames.positions)
    worst_energy = worst_forces = 0.0
    for _ in range(3):
        q = random_orthogonal(rng, proper)
        shift = rng.normal(size=3) * 3.0
        moved = frames.positions @ q.T + shift[None, None, :]
        energy_moved, forces_moved = nequip.energy_and_forces(params, frames.species, moved)
        worst_energy = max(worst_energy, _relative(energy_moved, energy))
        worst_forces = max(worst_forces, _relative(forces_moved, np.asarray(forces) @ q.T))
    print(f"max relative error: energy {worst_energy:.2e}, forces {worst_forces:.2e} (float32)")
    assert worst_energy < 1e-5, worst_energy
    assert worst_forces < 1e-5, worst_forces


def test_permuting_same_species_atoms_permutes_forces_and_keeps_energy(params, frames):
    # C C O H H H H H H: swap the carbons, shuffle the hydrogens; species stay in place.
    order = np.array([1, 0, 2, 8, 5, 3, 7, 4, 6])
    assert np.array_equal(frames.species[order], frames.species)
    energy, forces = nequip.energy_and_forces(params, frames.species, frames.positions)
    energy_p, forces_p = nequip.energy_and_forces(params, frames.species, frames.positions[:, order])
    errors = _relative(energy_p, energy), _relative(forces_p, np.asarray(forces)[:, order])
    print(f"max relative error under permutation: energy {errors[0]:.2e}, forces {errors[1]:.2e}")
    assert max(errors) < 1e-5, errors


def test_forces_equal_minus_finite_differences_of_the_energy_in_float64(params, frames):
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
        x = np.asarray(frames.positions[0], np.float64)
        _, forces = nequip.energy_and_forces(p64, frames.species, x)
        h = 1e-5
        steps = np.eye(27).reshape(27, 9, 3) * h
        plus, _ = nequip.energy_and_forces(p64, frames.species, x[None] + steps)
        minus, _ = nequip.energy_and_forces(p64, frames.species, x[None] - steps)
        numeric = -(np.asarray(plus) - np.asarray(minus)).reshape(9, 3) / (2 * h)
        assert np.asarray(forces).dtype == np.float64
    error = float(np.max(np.abs(np.asarray(forces) - numeric)))
    print(f"max |F - (-dE/dx finite difference)| = {error:.2e} eV/Å")
    assert error < 1e-6 * float(np.max(np.abs(numeric))) + 1e-9


def test_padding_atoms_change_nothing_and_keep_values_and_gradients_finite(params, frames):
    # Three padding atoms: two on the origin, one on top of a real atom (zero-length pairs).
    species, positions = graph.pad_atoms(frames.species, frames.positions, 12)
    positions = positions.copy()
    positions[:, 11] = frames.positions[:, 0]
    energy, forces = nequip.energy_and_forces(params, frames.species, frames.positions)
    energy_pad, forces_pad = nequip.energy_and_forces(params, species, positions)
    np.testing.assert_allclose(energy_pad, energy, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(forces_pad[:, :9], forces, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(forces_pad[:, 9:]) == 0.0)

    settings = TrainSettings(steps=1)
    zeros_energy = jnp.zeros(positions.shape[0])

    def loss(weights):
        p = params.replace(weights=weights)
        x = jnp.asarray(positions, jnp.float32)
        return loss_terms(p, jnp.asarray(species), x, zeros_energy, jnp.zeros_like(x), settings)[0]

    value, grads = jax.jit(jax.value_and_grad(loss))(params.weights)
    chex.assert_tree_all_finite((value, grads))
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))


def test_atoms_beyond_the_cutoff_do_not_interact(params, frames):
    # The molecule plus a hydrogen 50 Å or 80 Å away: the far atom must not matter at all.
    far = np.repeat(np.concatenate([frames.positions[:1], np.array([[[50.0, 0.0, 0.0]]])], axis=1), 2, axis=0)
    far[1, -1, 0] = 80.0
    species = np.concatenate([frames.species, [1]])
    energy, forces = nequip.energy_and_forces(params, species, far)
    chex.assert_tree_all_finite((energy, forces))
    assert np.all(np.asarray(forces[:, -1]) == 0.0)
    np.testing.assert_allclose(energy[0], energy[1], rtol=1e-6)
    np.testing.assert_allclose(forces[0], forces[1], rtol=1e-5, atol=1e-6)
    _, forces_molecule = nequip.energy_and_forces(params, frames.species, frames.positions)
    np.testing.assert_allclose(forces[0, :9], forces_molecule[0], rtol=1e-5, atol=1e-6)


def test_energy_is_smooth_where_a_pair_crosses_the_cutoff(params):
    cutoff = SYMMETRY_CONFIG.cutoff
    distances = np.array([cutoff - 2e-3, cutoff - 1e-3, cutoff + 1e-3, 100.0])
    positions = np.zeros((4, 2, 3))
    positions[:, 1, 0] = distances
    energy, forces = nequip.energy_and_forces(params, np.array([6, 8]), positions)
    # The envelope u_6 and its first two derivatives vanish at r_c, so E - E(inf) ~ (r_c - r)^3:
    # a hard cutoff would jump by O(0.1) eV here.
    assert abs(float(energy[1] - energy[3])) < 1e-6
    assert abs(float(energy[2] - energy[3])) < 1e-6  # float32 summation order only
    assert float(jnp.max(jnp.abs(forces[:2]))) < 1e-4
    assert float(jnp.max(jnp.abs(forces[2:]))) == 0.0
    # ... and inside the cutoff the pair does interact.
    near = positions[:1].copy()
    near[0, 1, 0] = 1.3
    near_energy = nequip.energy_and_forces(params, np.array([6, 8]), np.concatenate([near] * 4))[0][0]
    assert abs(float(near_energy - energy[3])) > 1e-3


def test_energy_and_forces_compile_once_across_batches(params):
    calls = []

    @jax.jit
    @chex.assert_max_traces(n=1)
    def energy(positions):
        calls.append(1)
        return nequip.energy_and_forces(params, ETHANOL_SPECIES, positions)

    for seed in range(3):
        energy(morse_frames(seed, 5).positions)
    assert len(calls) == 1


def test_bessel_basis_matches_e3nn():
    r = jnp.linspace(0.1, 4.0, 17)
    with jax.numpy_rank_promotion("allow"):
        expected = e3nn.bessel(r, 8, 4.0)
    np.testing.assert_allclose(nequip.bessel_basis(r, 8, 4.0), expected, rtol=1e-5, atol=1e-6)


def test_masked_edges_get_a_unit_dummy_vector():
    species = np.array([6, 0, 0])
    positions = jnp.zeros((3, 3))
    g = graph.molecule_graph(jnp.asarray(species), positions, 4.0)
    geometry = graph.edge_geometry(g)
    assert g.senders.shape == (6,) and not np.any(np.asarray(geometry.mask))
    np.testing.assert_array_equal(geometry.lengths, np.ones(6))

    def total_length(x):
        return jnp.sum(graph.edge_geometry(graph.molecule_graph(jnp.asarray(species), x, 4.0)).lengths)

    grad = jax.grad(total_length)(positions)
    chex.assert_tree_all_finite(grad)


def test_shift_is_mean_energy_per_atom_for_one_molecule_and_least_squares_otherwise(frames):
    shift, scale = nequip.fit_species_shift_scale(SYMMETRY_CONFIG, frames.species, frames.energy, frames.forces)
    np.testing.assert_allclose(shift, np.full(4, np.mean(frames.energy) / 9))
    np.testing.assert_allclose(scale, np.full(4, np.sqrt(np.mean(frames.forces**2))))
    # Varying compositions (padding 0 marks absent atoms): recover per-species energies exactly.
    rng = np.random.default_rng(0)
    species = rng.choice(np.array([0, 1, 6, 7, 8]), size=(30, 7))
    per_species = {1: -13.6, 6: -1030.0, 7: -1480.0, 8: -2040.0}
    energy = np.array([sum(per_species.get(z, 0.0) for z in row) for row in species])
    shift, _ = nequip.fit_species_shift_scale(SYMMETRY_CONFIG, species, energy, np.ones((30, 7, 3)))
    np.testing.assert_allclose(shift, [per_species[z] for z in SYMMETRY_CONFIG.species], rtol=1e-10)


def test_unknown_species_is_a_config_error(params, frames):
    species = frames.species.copy()
    species[0] = 9
    with pytest.raises(ConfigError, match=r"\[9\].*species=\(1, 6, 7, 8, 9\)"):
        nequip.energy_and_forces(params, species, frames.positions)
    with pytest.raises(ConfigError, match="cutoff"):
        nequip.NequipConfig(cutoff=0.0)
