"""The oscillator loader under random damage: every outcome is a DataFormatError or the original data."""

import io

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxbench
from jaxbench.errors import DataFormatError

TASK = jaxbench.make("oscillator-v0", "tiny")


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    data = TASK.generate(jax.random.key(1), TASK.config)
    path = TASK.save(tmp_path_factory.mktemp("valid") / "data", data, TASK.config)
    return path.read_bytes(), jax.tree.map(np.asarray, data)


def load_or_error(path, original):
    try:
        loaded = TASK.load(path, jax.random.key(0), TASK.config)
    except DataFormatError as error:
        assert str(path) in str(error) and "\n" not in str(error)  # one line naming the file
        return False
    for name in original._fields:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    return True


settings_ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings_
@given(st.floats(0.0, 1.0))
def test_truncated_files(valid, tmp_path, fraction):
    raw, original = valid
    path = tmp_path / "cut.npz"
    path.write_bytes(raw[: int(len(raw) * fraction)])
    assert load_or_error(path, original) == (fraction == 1.0)


@settings_
@given(st.integers(0, 3), st.sampled_from(["drop", "rename", "strings", "nan", "inf", "flatten", "int"]))
def test_edited_arrays(valid, tmp_path, which, edit):
    raw, original = valid
    with np.load(io.BytesIO(raw)) as npz:
        arrays = dict(npz)
    name = sorted(arrays)[which]
    value = arrays.pop(name)
    if edit == "rename":
        arrays[name + "_"] = value
    elif edit == "strings":
        arrays[name] = value.astype(str)
    elif edit in ("nan", "inf"):
        value = value.astype(np.float64)
        value.flat[-1] = np.nan if edit == "nan" else np.inf
        arrays[name] = value
    elif edit == "flatten":
        arrays[name] = value.reshape(-1)[: value.size - 1]
    elif edit == "int":  # a harmless edit: integers that are the same numbers
        arrays[name] = np.round(value).astype(np.int64)
    path = tmp_path / "edited.npz"
    np.savez(path, **arrays)
    loaded = load_or_error(path, original) if edit != "int" else None
    if edit == "int":  # either refused or loaded as the rounded numbers: never anything else
        try:
            got = TASK.load(path, jax.random.key(0), TASK.config)
            np.testing.assert_array_equal(getattr(got, name), np.round(value).astype(np.float32))
        except DataFormatError:
            pass
    else:
        assert loaded is False
