"""Run records: atomic files, JSON policy, zarr arrays, pytree checkpoints, checksums, environment."""

import collections
import hashlib
import json
import os
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench import records
from jaxbench.errors import DataFormatError


class Posterior(NamedTuple):
    mean: np.ndarray
    scale: np.ndarray


def _leftovers(directory):
    """Hidden temporary siblings that an atomic write must not leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# -- atomic files ------------------------------------------------------------------------------
def test_atomic_write_replaces_file_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "notes.txt"
    records.atomic_write_text(path, "first")
    records.atomic_write_text(path, "second ✓")
    assert path.read_text(encoding="utf-8") == "second ✓"
    assert _leftovers(path.parent) == []


def test_unserialisable_json_keeps_the_existing_file(tmp_path):
    path = tmp_path / "metrics.json"
    records.atomic_write_json(path, {"coverage": 0.68})
    with pytest.raises(TypeError, match=r"value\['fit'\]"):
        records.atomic_write_json(path, {"coverage": 0.7, "fit": object()})
    assert records.read_json(path) == {"coverage": 0.68}
    assert _leftovers(tmp_path) == []


def test_write_interrupted_before_rename_keeps_the_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "scores.json"
    records.atomic_write_json(path, {"score": 1})

    def crash(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk vanished"):
        records.atomic_write_json(path, {"score": 2})
    assert records.read_json(path) == {"score": 1}
    assert _leftovers(tmp_path) == []


# -- JSON --------------------------------------------------------------------------------------
def test_json_round_trip_of_numpy_and_jax_values(tmp_path):
    obj = {
        "f32": np.float32(0.5),
        "i64": np.int64(7),
        "flag": np.bool_(True),
        "array": np.arange(6, dtype=np.int32).reshape(2, 3),
        "jax": jnp.array([1.5, 2.5]),
        "tuple": (1, "a", None),
        "nested": {3: np.float64(0.25)},
    }
    path = tmp_path / "m.json"
    records.atomic_write_json(path, obj)
    back = records.read_json(path)
    assert back == {
        "f32": 0.5,
        "i64": 7,
        "flag": True,
        "array": [[0, 1, 2], [3, 4, 5]],
        "jax": [1.5, 2.5],
        "tuple": [1, "a", None],
        "nested": {"3": 0.25},
    }
    assert back == records.to_jsonable(obj)  # what the runner compares on --resume
    text = path.read_text()
    assert list(json.loads(text)) == sorted(back) and '\n  "array"' in text


def test_non_finite_floats_are_written_as_null(tmp_path):
    path = tmp_path / "m.json"
    records.atomic_write_json(path, {"nan": float("nan"), "inf": np.float32(np.inf), "a": np.array([1.0, -np.inf])})
    assert records.read_json(path) == {"nan": None, "inf": None, "a": [1.0, None]}
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_read_json_names_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(DataFormatError, match="absent.json: no such file"):
        records.read_json(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text('{"a": 1,')
    with pytest.raises(DataFormatError, match=r"broken.json is not valid JSON .*line 1"):
        records.read_json(tmp_path / "broken.json")


# -- zarr arrays -------------------------------------------------------------------------------
DTYPES = ("float32", "float64", "int32", "int64", "bool")
SHAPES = ((), (5,), (3, 0), (2, 3, 4))


def test_arrays_round_trip_every_dtype_and_rank(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        f"{dtype}_rank{len(shape)}": (rng.normal(size=shape) * 100).astype(dtype)
        for dtype in DTYPES
        for shape in SHAPES
    }
    records.write_arrays(tmp_path / "arrays", arrays)
    back = records.read_arrays(tmp_path / "arrays")
    assert sorted(back) == sorted(arrays)
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape, name
        np.testing.assert_array_equal(back[name], array, err_msg=name)
    assert _leftovers(tmp_path) == []


def test_write_arrays_replaces_an_existing_directory(tmp_path):
    path = tmp_path / "arrays"
    records.write_arrays(path, {"mu_hat": np.zeros(3), "sigma": np.ones(3)})
    records.write_arrays(path, {"mu_hat": jnp.arange(4.0)})
    back = records.read_arrays(path)
    assert list(back) == ["mu_hat"]
    np.testing.assert_array_equal(back["mu_hat"], np.arange(4.0, dtype=np.float32))
    assert _leftovers(tmp_path) == []


def test_interrupted_write_arrays_keeps_the_existing_directory(tmp_path, monkeypatch):
    path = tmp_path / "arrays"
    records.write_arrays(path, {"mu_hat": np.zeros(3)})
    real_replace = os.replace
    calls = []

    def crash_on_swap(src, dst):  # moving the old directory aside works; installing the new fails
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("interrupted")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_swap)
    with pytest.raises(OSError, match="interrupted"):
        records.write_arrays(path, {"mu_hat": np.ones(3)})
    monkeypatch.setattr(os, "replace", real_replace)
    np.testing.assert_array_equal(records.read_arrays(path)["mu_hat"], np.zeros(3))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_write_arrays_rejects_unsafe_names(tmp_path):
    with pytest.raises(ValueError, match="portable file name"):
        records.write_arrays(tmp_path / "arrays", {"../escape": np.zeros(1)})
    assert list(tmp_path.iterdir()) == []


def test_read_arrays_names_a_missing_directory(tmp_path):
    with pytest.raises(DataFormatError, match="nowhere: no such array directory"):
        records.read_arrays(tmp_path / "nowhere")


# -- pytree checkpoints ------------------------------------------------------------------------
def _assert_same_tree(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_pytree_round_trip_rebuilds_dicts_tuples_lists_and_namedtuples(tmp_path):
    tree = {
        "params": {"w": jnp.ones((2, 3)), "b": np.zeros(3, np.float64)},
        "posterior": Posterior(np.array([0.1, 0.2], np.float32), np.array(1.0)),
        "history": [np.arange(3), (np.int32(4), None)],
        "by_bin": {0: np.array([True, False]), 1: np.array(2.5, np.float32)},
    }
    records.save_pytree(tmp_path / "stage.npz", tree)
    loaded = records.load_pytree(tmp_path / "stage.npz")
    _assert_same_tree(loaded, tree)
    assert isinstance(loaded["posterior"], Posterior)
    _assert_same_tree(records.load_pytree(tmp_path / "stage.npz", like=tree), tree)
    assert _leftovers(tmp_path) == []


def test_pytree_with_custom_nodes_loads_with_like(tmp_path):
    tree = collections.OrderedDict(b=np.ones(2), a=np.zeros(1))
    records.save_pytree(tmp_path / "c.npz", tree)
    with pytest.raises(DataFormatError, match="pass like="):
        records.load_pytree(tmp_path / "c.npz")
    _assert_same_tree(records.load_pytree(tmp_path / "c.npz", like=tree), tree)


def test_load_pytree_names_what_does_not_match_like(tmp_path):
    records.save_pytree(tmp_path / "c.npz", {"w": np.ones(2)})
    with pytest.raises(DataFormatError, match=r"missing: \[\"\['v'\]\"\]"):
        records.load_pytree(tmp_path / "c.npz", like={"v": np.ones(2)})
    with pytest.raises(DataFormatError, match=r"\['w'\] has shape \(2,\), like= has \(3,\)"):
        records.load_pytree(tmp_path / "c.npz", like={"w": jax.ShapeDtypeStruct((3,), jnp.float32)})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="junk.npz is not a pytree checkpoint"):
        records.load_pytree(tmp_path / "junk.npz")


# -- checksums ---------------------------------------------------------------------------------
def test_sha256_arrays_is_stable_and_sensitive_to_one_value():
    a = {"x": np.arange(10.0), "y": np.array([1, 2], np.int32)}
    reordered = {"y": np.array([1, 2], np.int32), "x": np.arange(10.0)}
    assert records.sha256_arrays(a) == records.sha256_arrays(reordered)
    as_float32 = {"x": np.arange(3.0, dtype=np.float32)}
    assert records.sha256_arrays({"x": jnp.arange(3.0)}) == records.sha256_arrays(as_float32)
    changed = dict(a, x=a["x"].copy())
    changed["x"][7] = np.nextafter(7.0, 8.0)
    assert records.sha256_arrays(changed) != records.sha256_arrays(a)
    assert records.sha256_arrays(dict(a, y=a["y"].astype(np.int64))) != records.sha256_arrays(a)
    assert records.sha256_arrays({"x": a["x"].reshape(2, 5)}) != records.sha256_arrays({"x": a["x"]})
    assert re.fullmatch(r"[0-9a-f]{64}", records.sha256_arrays(a))


def test_sha256_file_matches_hashlib_and_sees_one_byte(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "d.bin").write_bytes(data)
    assert records.sha256_file(tmp_path / "d.bin") == hashlib.sha256(data).hexdigest()
    (tmp_path / "d.bin").write_bytes(data[:-1] + b"\x00")
    assert records.sha256_file(tmp_path / "d.bin") != hashlib.sha256(data).hexdigest()


# -- environment -------------------------------------------------------------------------------
def test_environment_record_has_the_keys_and_is_json(tmp_path):
    env = records.environment_record()
    assert set(env) >= {
        "jaxbench_version",
        "git_commit",
        "git_dirty",
        "python",
        "platform",
        "packages",
        "devices",
        "hostname",
        "timestamp_utc",
    }
    assert set(env["packages"]) == set(records.RECORDED_PACKAGES)
    assert env["packages"]["jax"] == jax.__version__
    assert env["devices"]["count"] == jax.device_count()
    assert env["devices"]["process_count"] == 1
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])
    assert env["timestamp_utc"].endswith("+00:00")
    json.dumps(env, allow_nan=False)


def test_environment_record_without_git_does_not_fail(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(records.subprocess, "run", no_git)
    env = records.environment_record()
    assert env["git_commit"] is None and env["git_dirty"] is None
