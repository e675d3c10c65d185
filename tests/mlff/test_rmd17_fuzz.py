"""Fuzzing the rMD17 loader: a damaged file is refused in one line naming it, or loads exactly as written.

A small valid ``rmd17_ethanol.npz`` is written with the task's own writer (``data.write_rmd17``);
each example truncates or overwrites its bytes, or drops, renames, retypes, reshapes or puts a
NaN/inf into one of its arrays. Every outcome must be a DataFormatError/ConfigError whose one-line
message names the file, or a trajectory equal to the original (float32 copies to their rounding).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.tasks.mlff import data
from jaxbench.tasks.mlff.geometries import starting_geometry

NAME = "rmd17_ethanol.npz"
FIELDS = ("nuclear_charges", "coords", "energies", "forces", "old_indices", "old_energies", "old_forces")
FLOAT32_ROUNDING = 2.0**-23  # relative


def original() -> data.Trajectory:
    """8 ethanol frames with rMD17-like labels (total energy near the DFT value, forces ~30 kcal/mol/Å)."""
    rng = np.random.default_rng(0)
    species, start = starting_geometry("ethanol")
    return data.Trajectory(
        species=species.astype(np.int32),
        positions=start[None] + 0.02 * rng.standard_normal((8, *start.shape)),
        energy=(2 * -37.845 + 6 * -0.5 - 75.067) * data.HARTREE_IN_EV + 0.2 * rng.standard_normal(8),
        forces=1.3 * rng.standard_normal((8, *start.shape)),
        time_index=rng.choice(1000, 8, replace=False).astype(np.int64),
    )


ORIGINAL = original()
with tempfile.TemporaryDirectory() as folder:
    data.write_rmd17(Path(folder) / NAME, ORIGINAL)
    RAW = (Path(folder) / NAME).read_bytes()
    with np.load(Path(folder) / NAME) as npz:
        ARRAYS = {key: npz[key] for key in npz.files}


def load(write) -> None:
    """Writes a file with ``write(path)`` and checks the loader's outcome (refused in one line, or equal)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / NAME
        write(path)
        try:
            traj = data.load_rmd17(path, "ethanol")
        except (DataFormatError, ConfigError) as error:
            message = str(error)
            assert "\n" not in message and NAME in message, message
            return
    np.testing.assert_array_equal(traj.species, ORIGINAL.species)
    np.testing.assert_array_equal(traj.time_index, ORIGINAL.time_index)
    for field in ("positions", "energy", "forces"):
        np.testing.assert_allclose(getattr(traj, field), getattr(ORIGINAL, field), rtol=FLOAT32_ROUNDING, atol=0)


def save_arrays(arrays: dict) -> Callable[[Path], None]:
    """A writer of ``arrays`` as an npz (object arrays pickled, as np.savez does)."""
    return lambda path: np.savez(path, **arrays)


@given(length=st.integers(0, len(RAW) - 1))
def test_a_truncated_file_is_refused(length):
    load(lambda path: path.write_bytes(RAW[:length]))


CENTRAL = RAW.index(b"PK\x01\x02")  # the zip's central directory: its first entry's header


@given(edits=st.lists(st.tuples(st.integers(0, len(RAW) - 1), st.integers(0, 255)), min_size=1, max_size=4))
@example(edits=[(CENTRAL + 10, 99)])  # unknown compression method: NotImplementedError from zipfile
@example(edits=[(CENTRAL + 8, 1)])  # the encryption flag: RuntimeError from zipfile
@example(edits=[(CENTRAL + 6, 70)])  # "needs zip version 7.0": NotImplementedError
def test_overwritten_bytes_are_refused_or_harmless(edits):
    damaged = bytearray(RAW)
    for position, value in edits:
        damaged[position] = value
    load(lambda path: path.write_bytes(bytes(damaged)))


@given(field=st.sampled_from(FIELDS), new_name=st.sampled_from([None, "coord", "Coords", "R", "E", "F", "z"]))
def test_a_dropped_or_renamed_key_is_refused_or_unused(field, new_name):
    arrays = dict(ARRAYS)
    value = arrays.pop(field)
    if new_name is not None:
        arrays[new_name] = value
    load(save_arrays(arrays))


DTYPES = (np.int64, np.int32, np.int8, np.uint16, np.float64, np.float32, np.float16, np.bool_, np.complex128, "U8")
SHAPES = {
    "drop first": lambda a: a[1:],
    "empty": lambda a: a[:0],
    "add axis": lambda a: a[..., None],
    "column": lambda a: a[:, None],
    "flatten": lambda a: a.reshape(-1),
    "swap first and last": lambda a: np.swapaxes(a, 0, -1),
    "scalar": lambda a: a.reshape(-1)[0],
}


@given(field=st.sampled_from(FIELDS), dtype=st.sampled_from(DTYPES + (object,)))
def test_a_wrong_dtype_is_refused_or_loaded_as_written(field, dtype):
    value = ARRAYS[field]
    with np.errstate(over="ignore", invalid="ignore"):  # float16 energies overflow to inf: refused
        retyped = value.astype(dtype) if dtype is not object else np.array(list(value), dtype=object)
    arrays = {**ARRAYS, field: retyped}
    load(save_arrays(arrays))


@given(field=st.sampled_from(FIELDS), shape=st.sampled_from(sorted(SHAPES)))
def test_a_wrong_shape_is_refused_or_equivalent(field, shape):
    load(save_arrays({**ARRAYS, field: np.asarray(SHAPES[shape](ARRAYS[field]))}))


@given(field=st.sampled_from(FIELDS), position=st.integers(0, 10**6), value=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_a_non_finite_value_is_refused_or_unused(field, position, value):
    array = ARRAYS[field].astype(np.float64)  # integer fields become floats: refused for their dtype
    array.reshape(-1)[position % array.size] = value
    load(save_arrays({**ARRAYS, field: array}))


def test_the_unedited_file_loads_as_the_original():
    load(lambda path: path.write_bytes(RAW))
