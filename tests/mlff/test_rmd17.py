"""The rMD17 loader, its unit checks and the splits, on small files in the archive's exact layout."""

from __future__ import annotations

import numpy as np
import pytest

from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.tasks.mlff import data
from jaxbench.tasks.mlff.geometries import starting_geometry

N_FRAMES = 40
# An rMD17-like aspirin total energy (PBE/def2-SVP, about -648.2 Hartree) in kcal/mol.
ASPIRIN_ENERGY_KCAL = -406_737.0
EV_PER_KCAL_MOL = 0.0433641  # 1 kcal/mol = 43.3641 meV, by hand


def fake_arrays(n_frames: int = N_FRAMES, seed: int = 0) -> dict[str, np.ndarray]:
    """rMD17-format arrays: aspirin's geometry perturbed by 0.03 Å, kcal/mol labels, shuffled old_indices."""
    rng = np.random.default_rng(seed)
    species, positions = starting_geometry("aspirin")
    return {
        "nuclear_charges": species.astype(np.int64),
        "coords": positions[None] + 0.03 * rng.standard_normal((n_frames, *positions.shape)),
        "energies": ASPIRIN_ENERGY_KCAL + 3.0 * rng.standard_normal(n_frames),
        "forces": 30.0 * rng.standard_normal((n_frames, *positions.shape)),
        # distinct places in a longer trajectory, stored out of time order as the archive does
        "old_indices": rng.choice(211_762, size=n_frames, replace=False).astype(np.int64),
        "old_energies": ASPIRIN_ENERGY_KCAL + 3.0 * rng.standard_normal(n_frames),
        "old_forces": 30.0 * rng.standard_normal((n_frames, *positions.shape)),
    }


def write_archive(root, arrays: dict | None = None, molecule: str = "aspirin"):
    """Writes rmd17/npz_data/rmd17_<molecule>.npz under root; returns the npz path."""
    path = root / "rmd17" / "npz_data" / f"rmd17_{molecule}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **(fake_arrays() if arrays is None else arrays))
    return path


def write_split(root, k: int, train, test):
    folder = root / "rmd17" / "splits"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"index_train_{k:02d}.csv").write_text("".join(f"{i}\n" for i in train))
    (folder / f"index_test_{k:02d}.csv").write_text("".join(f"{i}\n" for i in test))


def modified(**changes) -> dict[str, np.ndarray]:
    arrays = fake_arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value(arrays[key]) if callable(value) else value
    return arrays


# -- loading -------------------------------------------------------------------------------------
def test_load_converts_kcal_per_mol_to_ev(tmp_path):
    arrays = fake_arrays()
    arrays["energies"][0] = -406_737.0
    arrays["forces"][0, 0] = [23.0605, -46.121, 0.0]  # 1 eV/Å = 23.0605 kcal/mol/Å
    path = write_archive(tmp_path, arrays)

    traj = data.load_rmd17(path)

    assert traj.energy[0] == pytest.approx(-406_737.0 * EV_PER_KCAL_MOL, rel=1e-6)
    assert traj.energy[0] == pytest.approx(-17_637.786, abs=0.002)  # 406,737 × 0.0433641
    np.testing.assert_allclose(traj.forces[0, 0], [1.0, -2.0, 0.0], atol=2e-5)
    np.testing.assert_allclose(traj.energy, arrays["energies"] * EV_PER_KCAL_MOL, rtol=1e-6)
    np.testing.assert_allclose(traj.forces, arrays["forces"] * EV_PER_KCAL_MOL, rtol=1e-6)
    np.testing.assert_array_equal(traj.positions, arrays["coords"])
    np.testing.assert_array_equal(traj.species, arrays["nuclear_charges"])
    np.testing.assert_array_equal(traj.time_index, arrays["old_indices"])
    assert traj.species.dtype == np.int32 and traj.time_index.dtype == np.int64
    assert traj.positions.dtype == traj.energy.dtype == traj.forces.dtype == np.float64
    assert (traj.num_frames, traj.num_atoms) == (N_FRAMES, 21)
    assert data.formula(traj.species) == "C9H8O4"


def test_directory_and_file_paths_load_the_same_frames(tmp_path):
    path = write_archive(tmp_path)
    by_file = data.load_rmd17(path)
    for root in (tmp_path, tmp_path / "rmd17", tmp_path / "rmd17" / "npz_data"):
        by_dir = data.load_rmd17(root, "aspirin")
        for a, b in zip(by_file, by_dir):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(DataFormatError, match="rmd17_ethanol.npz"):
        data.load_rmd17(tmp_path, "ethanol")


def test_write_rmd17_round_trips(tmp_path):
    traj = data.load_rmd17(write_archive(tmp_path))
    data.write_rmd17(tmp_path / "copy" / "rmd17_aspirin.npz", traj)
    again = data.load_rmd17(tmp_path / "copy")
    for name, a, b in zip(traj._fields, traj, again):
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("key", ["nuclear_charges", "coords", "energies", "forces", "old_indices"])
def test_missing_key_is_named(tmp_path, key):
    path = write_archive(tmp_path, modified(**{key: None}))
    with pytest.raises(DataFormatError, match=rf"rmd17_aspirin.npz has no key '{key}'"):
        data.load_rmd17(path)


def test_missing_old_indices_can_fall_back_to_row_order(tmp_path):
    path = write_archive(tmp_path, modified(old_indices=None))
    traj = data.load_rmd17(path, require_old_indices=False)
    np.testing.assert_array_equal(traj.time_index, np.arange(N_FRAMES))


@pytest.mark.parametrize(
    "field, change",
    [
        ("forces", lambda f: f[..., 0]),  # (F, N)
        ("coords", lambda c: c[:, :20]),  # 20 atoms, nuclear_charges has 21
        ("energies", lambda e: np.stack([e, e], axis=1)),
        ("old_indices", lambda o: o[:-1]),
        ("nuclear_charges", lambda z: z[None]),
    ],
)
def test_wrong_shape_is_named(tmp_path, field, change):
    path = write_archive(tmp_path, modified(**{field: change}))
    with pytest.raises(DataFormatError, match=rf"field '{field}' has shape"):
        data.load_rmd17(path)


def test_md17_style_energy_column_is_accepted(tmp_path):
    path = write_archive(tmp_path, modified(energies=lambda e: e[:, None]))
    assert data.load_rmd17(path).energy.shape == (N_FRAMES,)


@pytest.mark.parametrize(
    "field, change",
    [
        ("nuclear_charges", lambda z: z.astype(np.float64)),
        ("energies", lambda e: e.astype(np.int64)),
        ("coords", lambda c: c.astype(np.complex128)),
        ("old_indices", lambda o: o.astype(np.float64)),
    ],
)
def test_wrong_dtype_is_named(tmp_path, field, change):
    path = write_archive(tmp_path, modified(**{field: change}))
    with pytest.raises(DataFormatError, match=rf"field '{field}' has dtype"):
        data.load_rmd17(path)


@pytest.mark.parametrize("field", ["coords", "energies", "forces"])
def test_nan_is_named_with_its_frame(tmp_path, field):
    def poison(array):
        array = array.copy()
        array.reshape(N_FRAMES, -1)[7, 0] = np.nan
        return array

    path = write_archive(tmp_path, modified(**{field: poison}))
    with pytest.raises(DataFormatError, match=rf"field '{field}' has 1 NaN.*frame 7"):
        data.load_rmd17(path)


def test_bohr_coordinates_are_caught(tmp_path):
    path = write_archive(tmp_path, modified(coords=lambda c: c / data.BOHR_IN_ANGSTROM))
    with pytest.raises(DataFormatError, match=r"field 'coords' does not look like Å.*look like Bohr"):
        data.load_rmd17(path)
    # an explicit opt-out loads them as they are
    assert data.load_rmd17(path, check_units=False).num_frames == N_FRAMES


def test_nanometre_coordinates_are_caught(tmp_path):
    path = write_archive(tmp_path, modified(coords=lambda c: c / 10.0))
    with pytest.raises(DataFormatError, match=r"field 'coords'.*look like nm"):
        data.load_rmd17(path)


@pytest.mark.parametrize(
    "scale, unit", [(1.0 / data.HARTREE_IN_KCAL_PER_MOL, "Hartree"), (EV_PER_KCAL_MOL, "eV"), (4.184, "kJ/mol")]
)
def test_energy_units_are_caught(tmp_path, scale, unit):
    path = write_archive(tmp_path, modified(energies=lambda e: e * scale))
    with pytest.raises(DataFormatError, match=rf"field 'energies' does not look like.*look like {unit}"):
        data.load_rmd17(path)


def test_relative_energies_are_caught(tmp_path):
    path = write_archive(tmp_path, modified(energies=lambda e: e - e.mean()))
    with pytest.raises(DataFormatError, match=r"field 'energies'.*relative or atomization"):
        data.load_rmd17(path)


@pytest.mark.parametrize("scale", [EV_PER_KCAL_MOL, 1.0 / 1185.8])  # eV/Å, Hartree/Bohr
def test_force_units_are_caught(tmp_path, scale):
    path = write_archive(tmp_path, modified(forces=lambda f: f * scale))
    with pytest.raises(DataFormatError, match=r"field 'forces' does not look like kcal/mol/Å"):
        data.load_rmd17(path)


def test_wrong_molecule_in_file_is_caught(tmp_path):
    species, positions = starting_geometry("ethanol")
    arrays = modified(
        nuclear_charges=species.astype(np.int64),
        coords=lambda c: np.broadcast_to(positions, (N_FRAMES, 9, 3)).copy(),
        forces=lambda f: f[:, :9],
    )
    path = write_archive(tmp_path, arrays)
    with pytest.raises(DataFormatError, match=r"'nuclear_charges' gives C2H6O, but rmd17_aspirin is C9H8O4"):
        data.load_rmd17(path)


def test_overlapping_atoms_are_caught(tmp_path):
    def collapse(coords):
        coords = coords.copy()
        coords[5, 3] = coords[5, 4] + 0.1
        return coords

    path = write_archive(tmp_path, modified(coords=collapse))
    with pytest.raises(DataFormatError, match=r"closer than 0.5 Å.*frame 5"):
        data.load_rmd17(path)


def test_repeated_old_indices_are_caught(tmp_path):
    path = write_archive(tmp_path, modified(old_indices=lambda o: np.concatenate([o[:-1], o[:1]])))
    with pytest.raises(DataFormatError, match=r"'old_indices' repeats"):
        data.load_rmd17(path)


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "rmd17_aspirin.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(DataFormatError, match=r"rmd17_aspirin.npz is not a readable npz"):
        data.load_rmd17(path)
    with pytest.raises(DataFormatError, match="figshare"):
        data.load_rmd17(tmp_path / "nowhere")


# -- splits --------------------------------------------------------------------------------------
def test_temporal_split_orders_frames_by_old_indices(tmp_path):
    arrays = fake_arrays()
    traj = data.load_rmd17(write_archive(tmp_path, arrays))
    assert not np.all(np.diff(arrays["old_indices"]) > 0)  # the file is shuffled

    pool, test = data.temporal_split(traj, test_fraction=0.1)

    assert test.size == 4 and pool.size == N_FRAMES - 4
    np.testing.assert_array_equal(np.sort(np.concatenate([pool, test])), np.arange(N_FRAMES))
    times = arrays["old_indices"]
    assert np.all(np.diff(times[pool]) > 0) and np.all(np.diff(times[test]) > 0)
    assert times[pool].max() < times[test].min()
    np.testing.assert_array_equal(np.sort(times[test]), np.sort(times)[-4:])


def test_temporal_split_rejects_bad_fractions_and_repeated_times(tmp_path):
    traj = data.load_rmd17(write_archive(tmp_path))
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ConfigError):
            data.temporal_split(traj, fraction)
    with pytest.raises(DataFormatError, match="time_index repeats"):
        data.temporal_split(traj._replace(time_index=np.zeros(N_FRAMES, np.int64)))


def test_training_windows_end_before_the_test_window(tmp_path):
    traj = data.load_rmd17(write_archive(tmp_path))
    pool, test = data.temporal_split(traj, 0.1)  # pool of 36
    times = traj.time_index

    first = data.training_window(pool, 0.0, 0.25)
    last = data.training_window(pool, 0.75, 0.25)
    np.testing.assert_array_equal(first, pool[:9])
    np.testing.assert_array_equal(last, pool[27:])
    assert times[last].max() < times[test].min()
    assert times[first].max() < times[last].min()
    with pytest.raises(ConfigError, match="runs into the test window"):
        data.training_window(pool, 0.8, 0.25)
    with pytest.raises(ConfigError):
        data.training_window(pool, 0.2, 0.0)
    np.testing.assert_array_equal(data.evenly_spaced(pool, 3), pool[[0, 18, 35]])


def test_published_split_loads_and_validates(tmp_path):
    write_archive(tmp_path)
    rng = np.random.default_rng(1)
    frames = rng.permutation(5_000)
    train, test = frames[:1000], frames[1000:2000]
    write_split(tmp_path, 3, train, test)

    for root in (tmp_path, tmp_path / "rmd17", tmp_path / "rmd17" / "npz_data" / "rmd17_aspirin.npz"):
        got_train, got_test = data.load_published_split(root, 3, n_frames=5_000)
        np.testing.assert_array_equal(got_train, train)
        np.testing.assert_array_equal(got_test, test)

    write_split(tmp_path, 1, train, test)
    with pytest.raises(DataFormatError, match=r"index_(train|test)_01.csv: \d+ indices outside \[0, 4000\)"):
        data.load_published_split(tmp_path, 1, n_frames=4_000)
    write_split(tmp_path, 2, np.concatenate([train[:-1], train[:1]]), test)
    with pytest.raises(DataFormatError, match=r"index_train_02.csv repeats"):
        data.load_published_split(tmp_path, 2)
    write_split(tmp_path, 4, train, np.concatenate([test[:-1], train[:1]]))
    with pytest.raises(DataFormatError, match=r"share 1 frames"):
        data.load_published_split(tmp_path, 4)
    write_split(tmp_path, 5, train[:999], test)
    with pytest.raises(DataFormatError, match=r"index_train_05.csv holds 999 indices"):
        data.load_published_split(tmp_path, 5)
    assert data.load_published_split(tmp_path, 5, expected_size=None)[0].size == 999
    with pytest.raises(ConfigError, match="splits 1..5"):
        data.load_published_split(tmp_path, 6)


def test_split_file_with_a_non_integer_line_is_caught(tmp_path):
    write_split(tmp_path, 1, list(range(999)) + ["12.5"], range(1000, 2000))
    with pytest.raises(DataFormatError, match=r"index_train_01.csv, line 1000: '12.5' is not a frame index"):
        data.load_published_split(tmp_path, 1)
    with pytest.raises(DataFormatError, match="no rMD17 split file index_train_01.csv"):
        data.load_published_split(tmp_path / "elsewhere", 1)


# -- helpers -------------------------------------------------------------------------------------
def test_take_concatenate_and_summary(tmp_path):
    traj = data.load_rmd17(write_archive(tmp_path))
    part = data.take(traj, np.array([3, 1]))
    np.testing.assert_array_equal(part.positions, traj.positions[[3, 1]])
    np.testing.assert_array_equal(part.time_index, traj.time_index[[3, 1]])
    both = data.concatenate([part, data.take(traj, np.array([0]))])
    assert both.num_frames == 3 and both._replace(energy=both.energy * 2).num_frames == 3
    summary = data.summarize(traj)
    assert summary["formula"] == "C9H8O4" and summary["num_frames"] == N_FRAMES
    assert summary["force_rms_ev_per_angstrom"] == pytest.approx(30.0 * EV_PER_KCAL_MOL, rel=0.1)
    assert data.formula([8, 1, 1]) == "H2O" and data.formula([6, 17, 1, 1, 1]) == "CH3Cl"
