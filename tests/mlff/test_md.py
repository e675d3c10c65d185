"""The GFN2-xTB trajectory generator: labels, dynamics, determinism, cache and starting geometries.

Runs use ethanol (9 atoms, ~1-4 ms per step) unless the molecule matters.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from ase import Atoms, units
from ase.data import atomic_masses, covalent_radii
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from jaxbench.errors import ConfigError
from jaxbench.tasks.mlff import data, md
from jaxbench.tasks.mlff.geometries import GEOMETRIES, starting_geometry

SHORT = {"equilibration_steps": 20}

# molecule -> (formula, covalent bonds: atoms - 1 + rings)
EXPECTED = {"aspirin": ("C9H8O4", 21), "ethanol": ("C2H6O", 8), "malonaldehyde": ("C3H4O2", 8)}


def kinetic_temperature(traj: data.Trajectory, timestep_fs: float) -> np.ndarray:
    """Per-frame temperature (K) from central-difference velocities of consecutive saved frames."""
    masses = atomic_masses[traj.species]
    velocity = (traj.positions[2:] - traj.positions[:-2]) / (2.0 * timestep_fs * units.fs)
    kinetic = 0.5 * np.einsum("i,fij->f", masses, velocity * velocity)
    return 2.0 * kinetic / ((3 * traj.num_atoms - 3) * units.kB)  # centre of mass fixed


def assert_same(a: data.Trajectory, b: data.Trajectory) -> None:
    for name, x, y in zip(a._fields, a, b):
        np.testing.assert_array_equal(x, y, err_msg=name)
        assert np.asarray(x).dtype == np.asarray(y).dtype, name


@pytest.fixture(scope="module")
def ethanol_run():
    return md.generate_trajectory(jax.random.key(0), "ethanol", 30, **SHORT)


# -- starting geometries ---------------------------------------------------------------------------
@pytest.mark.parametrize("molecule", sorted(EXPECTED))
def test_geometries_have_the_right_formula_and_bond_lengths(molecule):
    species, positions = starting_geometry(molecule)
    formula, n_bonds = EXPECTED[molecule]
    assert data.formula(species) == formula == GEOMETRIES[molecule].formula
    distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    radii = covalent_radii[species]
    bonded = np.triu(distance < 1.2 * (radii[:, None] + radii[None]), 1)
    assert bonded.sum() == n_bonds
    # bonds between 0.95 Å (O-H) and 1.55 Å (C-C); everything else further than 1.6 Å
    assert 0.95 < distance[bonded].min() and distance[bonded].max() < 1.55
    unbonded = np.triu(~bonded, 1) & np.triu(np.ones_like(bonded), 1)
    assert distance[unbonded].min() > 1.6
    hydrogens = species == 1
    assert np.all((bonded | bonded.T)[hydrogens].sum(axis=1) == 1)  # each H has one bond


def test_geometries_are_gfn2_minima():
    for molecule in sorted(EXPECTED):
        species, positions = starting_geometry(molecule)
        energy, forces = md.label_frames(species, positions[None])
        assert np.abs(forces).max() < 5e-3, molecule  # relaxed to 1e-3 eV/Å at tighter SCF
        assert energy[0] == pytest.approx(GEOMETRIES[molecule].energy_ev, abs=1e-3), molecule
    with pytest.raises(ConfigError, match="shipped: aspirin"):
        starting_geometry("benzene")


# -- labels and dynamics ----------------------------------------------------------------------------
def test_forces_match_finite_differences_of_the_energy(ethanol_run):
    frame = ethanol_run.positions[-1]
    energy, _ = md.label_frames(ethanol_run.species, frame[None])
    # the labels belong to the frame (SCF restarts differ by ~1e-9 eV)
    assert energy[0] == pytest.approx(ethanol_run.energy[-1], abs=1e-6)
    h = 1e-3  # Å; the error is ~1e-5 eV/Å from the SCF convergence, O(h²) terms are smaller
    coordinates = [(0, 0), (2, 1), (4, 2), (8, 0), (1, 2), (6, 1)]
    displaced = []
    for atom, axis in coordinates:
        for sign in (1.0, -1.0):
            moved = frame.copy()
            moved[atom, axis] += sign * h
            displaced.append(moved)
    energies, _ = md.label_frames(ethanol_run.species, np.stack(displaced))
    finite_difference = -(energies[0::2] - energies[1::2]) / (2 * h)
    labels = np.array([ethanol_run.forces[-1, atom, axis] for atom, axis in coordinates])
    assert np.abs(labels).max() > 0.1  # a frame from 500 K dynamics, not a minimum
    np.testing.assert_allclose(finite_difference, labels, atol=1e-3)


def test_velocity_verlet_conserves_total_energy():
    """NVE with the generator's calculator: 400 steps of 0.5 fs from 1000 K (~500 K after equipartition)."""
    species, positions = starting_geometry("ethanol")
    atoms = Atoms(numbers=species, positions=positions)
    atoms.calc = md.make_calculator(md.MDConfig(molecule="ethanol"))
    thermalize_momenta(atoms, 1000.0, rng=np.random.default_rng(3))
    Stationary(atoms)
    ZeroRotation(atoms)
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    total, kinetic = [], []
    with md.one_thread():
        for _ in dynamics.irun(400):
            total.append(atoms.get_total_energy())
            kinetic.append(atoms.get_kinetic_energy())
    total, kinetic = np.array(total), np.array(kinetic)
    assert kinetic.std() > 0.05  # eV: energy really flows between kinetic and potential
    assert np.abs(total - total[0]).max() < 0.02  # eV; measured ~6 meV (Verlet's O(dt²) wobble)
    assert abs(total[-50:].mean() - total[:50].mean()) < 2e-3  # eV of drift; measured < 0.3 meV
    assert total.std() < 0.03 * kinetic.std()


def test_same_key_gives_the_same_trajectory_and_another_key_another(ethanol_run):
    assert_same(ethanol_run, md.generate_trajectory(jax.random.key(0), "ethanol", 30, **SHORT))
    other = md.generate_trajectory(jax.random.key(1), "ethanol", 30, **SHORT)
    assert np.abs(other.positions - ethanol_run.positions).max() > 0.05
    assert not np.array_equal(other.energy, ethanol_run.energy)
    # an int seed is the key jax.random.key(seed)
    assert_same(ethanol_run, md.generate_trajectory(0, "ethanol", 30, **SHORT))


def test_trajectory_layout_and_time_index(ethanol_run):
    traj = md.generate_trajectory(0, "ethanol", 10, equilibration_steps=20, save_every=3)
    assert traj.species.dtype == np.int32 and traj.time_index.dtype == np.int64
    assert traj.positions.shape == traj.forces.shape == (10, 9, 3) and traj.energy.shape == (10,)
    np.testing.assert_array_equal(traj.time_index, 20 + 3 * np.arange(1, 11))
    np.testing.assert_array_equal(ethanol_run.time_index, 20 + np.arange(1, 31))
    # the same noise stream, so the stride-3 run passes through the stride-1 run's frames
    np.testing.assert_allclose(traj.positions[:3], ethanol_run.positions[[2, 5, 8]], atol=1e-9)
    assert np.abs(traj.energy - traj.energy.mean()).max() > 1e-3  # the molecule moves


def test_langevin_holds_the_target_temperature():
    hot = md.generate_trajectory(0, "ethanol", 1000, equilibration_steps=200)
    cold = md.generate_trajectory(0, "ethanol", 600, equilibration_steps=200, temperature_K=150.0)
    # 9 atoms fluctuate strongly; seed 0 gives ~466 K and ~146 K
    assert 400.0 < kinetic_temperature(hot, 0.5).mean() < 600.0
    assert 100.0 < kinetic_temperature(cold, 0.5).mean() < 200.0


# -- parallel runs and the cache --------------------------------------------------------------------
def test_parallel_runs_equal_single_process_runs(ethanol_run):
    keys = jax.random.split(jax.random.key(7), 2)
    runs = md.generate_trajectories([jax.random.key(0), keys[1]], "ethanol", 30, processes=2, **SHORT)
    assert len(runs) == 2
    assert_same(runs[0], ethanol_run)
    assert_same(runs[1], md.generate_trajectory(keys[1], "ethanol", 30, **SHORT))


def test_cache_round_trips_and_is_keyed_by_the_config(tmp_path, monkeypatch, ethanol_run):
    fresh = md.generate_trajectory(jax.random.key(0), "ethanol", 30, cache=tmp_path, **SHORT)
    assert_same(fresh, ethanol_run)
    path = md.cache_path(md.MDConfig(molecule="ethanol", **SHORT), jax.random.key(0), 30, tmp_path)
    assert path.is_dir()
    card = json.loads(path.with_name(path.name + ".datacard.json").read_text())
    assert card["level_of_theory"] == "GFN2-xTB" and card["temperature_K"] == 500.0
    assert card["code"].startswith("tblite ") and card["frame_spacing_fs"] == 0.5

    def no_simulation(*args, **kwargs):
        raise AssertionError("the cached run was simulated again")

    monkeypatch.setattr(md, "_run_md", no_simulation)
    assert_same(md.generate_trajectory(jax.random.key(0), "ethanol", 30, cache=tmp_path, **SHORT), fresh)
    assert_same(md.generate_trajectories([0], "ethanol", 30, cache=tmp_path, **SHORT)[0], fresh)
    monkeypatch.setenv("JAXBENCH_CACHE", str(tmp_path))
    assert_same(md.generate_trajectory(0, "ethanol", 30, cache=True, **SHORT), fresh)

    config = md.MDConfig(molecule="ethanol", **SHORT)
    others = [
        md.cache_path(config, jax.random.key(1), 30, tmp_path),
        md.cache_path(config, jax.random.key(0), 31, tmp_path),
        md.cache_path(md.MDConfig(molecule="ethanol", temperature_K=400.0, **SHORT), 0, 30, tmp_path),
    ]
    assert len({path, *others}) == 4
    with pytest.raises(AssertionError, match="simulated again"):
        md.generate_trajectory(1, "ethanol", 30, cache=tmp_path, **SHORT)


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="temperature_K must be a finite number > 0"):
        md.generate_trajectory(0, "ethanol", 5, temperature_K=-1.0)
    with pytest.raises(ConfigError, match="friction_per_fs must be a finite number > 0; got nan"):
        md.generate_trajectory(0, "ethanol", 5, friction_per_fs=float("nan"))
    with pytest.raises(ConfigError, match="MD options are"):
        md.generate_trajectory(0, "ethanol", 5, temperature=500.0)
    with pytest.raises(ConfigError, match="no starting geometry"):
        md.generate_trajectory(0, "water", 5)
    with pytest.raises(ConfigError, match="batch of shape"):
        md.generate_trajectory(jax.random.split(jax.random.key(0), 2), "ethanol", 5)
    with pytest.raises(ConfigError, match="timestep_fs"):
        md.MDConfig(timestep_fs=5.0)


def test_key_words_are_the_key_data():
    key = jax.random.key(42)
    assert md.key_words(key) == tuple(int(w) for w in np.asarray(jax.random.key_data(key)))
    assert md.key_words(42) == md.key_words(key) == md.key_words(jax.random.PRNGKey(42))
