"""The equivariance study: a pair potential passes it, broken symmetries are caught, NequIP passes."""

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench.tasks.mlff import equivariance, nequip
from jaxbench.tasks.mlff.geometries import starting_geometry


def _morse(positions):
    d = positions[:, :, None, :] - positions[:, None, :, :]
    n = positions.shape[1]
    r = jnp.sqrt(jnp.sum(d**2, axis=-1) + jnp.eye(n)[None])
    pair = (1 - jnp.exp(-(r - 1.2))) ** 2 * (1 - jnp.eye(n))[None]
    return 0.5 * jnp.sum(pair, axis=(1, 2))


def _energy_forces(energy):
    def fn(positions):
        e, grad = jax.value_and_grad(lambda p: jnp.sum(energy(p)))(positions)
        return energy(positions), -grad

    return fn


def test_equivariance_test_passes_a_pair_potential_and_catches_a_broken_one():
    positions = jax.random.normal(jax.random.key(1), (3, 6, 3)) * 1.5
    species = np.array([6, 6, 1, 1, 1, 8])
    good = equivariance.equivariance_test(_energy_forces(_morse), positions, species, jax.random.key(2), n_trials=4)
    for kind, errors in good.summary["max_errors"].items():
        assert errors["energy_rel"] < 1e-5 and errors["forces_rel"] < 1e-5, (kind, errors)

    # An energy with a preferred direction: invariant to translations along nothing, broken by rotations.
    def tilted(p):
        return _morse(p) + 0.3 * jnp.sum(p[..., 2], axis=1) ** 2

    bad = equivariance.equivariance_test(_energy_forces(tilted), positions, species, jax.random.key(2), n_trials=4)
    assert bad.summary["max_errors"]["rotation"]["energy_rel"] > 1e-2
    assert bad.summary["max_errors"]["permutation"]["energy_rel"] < 1e-5  # still permutation invariant

    def labelled(p):  # breaks the permutation symmetry only
        return _morse(p) + 0.1 * jnp.sum(jnp.arange(p.shape[1])[None, :] * jnp.sum(p**2, axis=-1), axis=1)

    broken = equivariance.equivariance_test(_energy_forces(labelled), positions, species, jax.random.key(2), n_trials=4)
    assert broken.summary["max_errors"]["permutation"]["energy_rel"] > 1e-3
    assert broken.summary["max_errors"]["rotation"]["energy_rel"] < 1e-5


def test_random_rotations_are_proper_and_permutations_keep_species():
    for i in range(5):
        r = np.asarray(e3nn.rand_matrix(jax.random.key(i)))  # what the study draws
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)
    species = np.array([1, 6, 1, 8, 6, 1])
    perm = equivariance.species_permutation(jax.random.key(0), species)
    np.testing.assert_array_equal(species[perm], species)
    assert sorted(perm) == list(range(6))


def test_nequip_forces_are_o3_equivariant_by_e3nn_and_by_the_study():
    species, positions = starting_geometry("ethanol")
    params = nequip.init(jax.random.key(0), nequip.TINY, species, positions)

    def forces(x: e3nn.IrrepsArray) -> e3nn.IrrepsArray:  # positions and forces are vectors (1o)
        return e3nn.IrrepsArray("1o", nequip.energy_and_forces(params, species, x.array)[1])

    # A random rotation and the inversion: NequIP's features have natural parity, so E is O(3) invariant.
    vectors = e3nn.IrrepsArray("1o", jnp.asarray(positions, jnp.float32))
    e3nn.utils.assert_equivariant(forces, jax.random.key(1), vectors, atol=1e-4, rtol=1e-4)
    result = equivariance.equivariance_test(
        lambda x: nequip.energy_and_forces(params, species, x, shifted=False),
        jnp.asarray(positions, jnp.float32)[None],
        species,
        jax.random.key(2),
        n_trials=2,
    )
    for kind, errors in result.summary["max_errors"].items():
        assert errors["energy_rel"] < 1e-4 and errors["forces_rel"] < 1e-4, (kind, errors)
