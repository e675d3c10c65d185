"""Run records on disk: atomic JSON, zarr arrays, pytree checkpoints, checksums, environment.

Every writer here is atomic: it writes a temporary sibling (same directory, so the same file
system), flushes and fsyncs it, then renames it over the target with ``os.replace``. An
interrupted run therefore leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import importlib.metadata
import io
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import tensorstore as ts

from jaxbench.errors import DataFormatError

#: Distributions whose versions :func:`environment_record` reports.
RECORDED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "tensorstore", "orbax-checkpoint", "matplotlib")

# Array names become directory names, so keep them to portable file-name characters.
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


# -- atomic files ------------------------------------------------------------------------------
def _fsync_dir(directory: Path) -> None:
    """Makes a rename in ``directory`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically, creating parent directories as needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run records are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


# -- JSON --------------------------------------------------------------------------------------
def to_jsonable(obj: Any, where: str = "value") -> Any:
    """``obj`` as plain JSON types: exactly what :func:`read_json` returns after writing it.

    numpy/jax scalars and arrays become Python numbers and nested lists, tuples become lists,
    paths become strings, mapping keys become strings. Non-finite floats (NaN, ±inf: a failed
    fit, an empty bin) become ``None`` (JSON ``null``), since JSON has no spelling for them.
    Raises TypeError naming the offending entry for anything else.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (np.ndarray, jax.Array)):
        array = np.asarray(obj)
        if array.dtype.kind not in "biufU":  # "U": strings of a stage reloaded from .npz
            raise TypeError(f"{where}: cannot write an array of dtype {array.dtype} to JSON")
        return to_jsonable(array.tolist(), where)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
                key = str(int(key))
            elif not isinstance(key, str):
                raise TypeError(f"{where}: JSON keys must be strings or integers, got {key!r}")
            out[str(key)] = to_jsonable(value, f"{where}[{key!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value, f"{where}[{i}]") for i, value in enumerate(obj)]
    raise TypeError(f"{where}: cannot write {type(obj).__name__} to JSON")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Writes ``obj`` as JSON (indent 2, sorted keys) atomically; NaN and ±inf are written as null.

    ``obj`` is converted with :func:`to_jsonable` before the file is touched, so an
    unserialisable value raises TypeError and leaves an existing file as it was.
    """
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path: str | Path) -> Any:
    """Reads a JSON file; raises DataFormatError naming the file when it is missing or corrupt."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: cannot be read as UTF-8 text ({error}).") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFormatError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}). "
            "jaxbench writes its files atomically, so it was written or edited by something else."
        ) from None


# -- zarr arrays -------------------------------------------------------------------------------
def _zarr_spec(directory: Path) -> dict:
    return {"driver": "zarr", "kvstore": {"driver": "file", "path": f"{directory.resolve()}/"}}


def write_arrays(path: str | Path, arrays: Mapping[str, Any]) -> None:
    """Writes each array as a zarr (v2) array ``path/<name>`` with tensorstore, atomically.

    Any rank; dtypes bool, (unsigned) integers, floats and complex. The arrays are written into
    a hidden sibling directory that then replaces ``path``; an existing ``path`` is moved aside
    first and deleted only once the new one is in place (restored if the swap fails).
    """
    path = Path(path)
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    for name, array in arrays.items():
        if not isinstance(name, str) or not _ARRAY_NAME.fullmatch(name):
            raise ValueError(
                f"array name {name!r} is not a portable file name (letters, digits, '_', '.', '-', "
                "not starting with '.' or '-')."
            )
        if array.dtype.kind not in "biufc":
            raise TypeError(f"array {name!r} has dtype {array.dtype}; zarr records hold numbers and booleans.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        for name, array in arrays.items():
            store = ts.open(_zarr_spec(tmp / name), create=True, dtype=array.dtype, shape=array.shape).result()
            store.write(array).result()
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)  # renaming a directory onto an empty one is allowed
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Reads every zarr array written by :func:`write_arrays` in ``path``, by name (sorted)."""
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such array directory (write_arrays makes one).")
    arrays = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or not (entry / ".zarray").is_file():
            continue
        try:
            arrays[entry.name] = ts.open(_zarr_spec(entry), open=True).result().read().result()
        except ValueError as error:
            raise DataFormatError(f"{entry}: not a readable zarr array ({error}).") from None
    return arrays


# -- pytree checkpoints ------------------------------------------------------------------------
def _describe(node: Any) -> Any:
    """JSON description of a pytree's containers (None where they cannot be rebuilt by name)."""
    if node is None:
        return ["none"]
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        cls = type(node)
        children = [_describe(child) for child in node]
        ok = "<locals>" not in cls.__qualname__ and None not in children
        return ["namedtuple", f"{cls.__module__}:{cls.__qualname__}", children] if ok else None
    if type(node) in (tuple, list):
        children = [_describe(child) for child in node]
        return [type(node).__name__, children] if None not in children else None
    if type(node) is dict:
        if not all(isinstance(key, (str, int)) for key in node):
            return None
        items = [[key, _describe(child)] for key, child in node.items()]
        return ["dict", items] if all(child is not None for _, child in items) else None
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(node)):
        return ["leaf"]
    return None


def _rebuild(description: Any) -> Any:
    """A skeleton pytree (leaves 0) from :func:`_describe`'s description."""
    kind = description[0]
    if kind == "leaf":
        return 0
    if kind == "none":
        return None
    if kind == "list":
        return [_rebuild(child) for child in description[1]]
    if kind == "tuple":
        return tuple(_rebuild(child) for child in description[1])
    if kind == "dict":
        return {key: _rebuild(child) for key, child in description[1]}
    module, qualname = description[1].split(":")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls(*(_rebuild(child) for child in description[2]))


def save_pytree(path: str | Path, tree: Any) -> None:
    """Saves a pytree of arrays as an ``.npz`` file atomically (small checkpoints and stages).

    Dicts, lists, tuples, NamedTuples and None are recorded so :func:`load_pytree` rebuilds the
    tree by itself; other pytree nodes (flax structs, OrderedDicts) need ``like=`` to load.
    """
    paths_and_leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    entries = {}
    for i, (key_path, leaf) in enumerate(paths_and_leaves):
        array = np.asarray(leaf)
        if array.dtype.kind not in "biufcUS":
            raise TypeError(f"leaf {jax.tree_util.keystr(key_path)} has dtype {array.dtype}; save arrays.")
        entries[f"leaf_{i:05d}"] = array
    entries["__paths__"] = np.array([jax.tree_util.keystr(p) for p, _ in paths_and_leaves], dtype=str)
    entries["__structure__"] = np.array(json.dumps(_describe(tree)))
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    atomic_write_bytes(path, buffer.getvalue())


def load_pytree(path: str | Path, like: Any = None) -> Any:
    """Loads a pytree saved by :func:`save_pytree`; leaves come back as numpy arrays.

    With ``like`` (a tree of the same structure, e.g. from ``jax.eval_shape``) the result has
    ``like``'s structure, and key paths and shapes are checked against it.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            saved_paths = [str(p) for p in npz["__paths__"]]
            leaves = [npz[f"leaf_{i:05d}"] for i in range(len(saved_paths))]
            description = json.loads(str(npz["__structure__"]))
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file.") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DataFormatError(f"{path} is not a pytree checkpoint written by save_pytree ({error}).") from None
    if like is None:
        if description is None:
            raise DataFormatError(f"{path} holds a pytree with custom nodes; pass like= a tree of the same structure.")
        skeleton = _rebuild(description)
    else:
        like_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(like)[0]]
        if like_paths != saved_paths:
            missing = sorted(set(like_paths) - set(saved_paths))
            extra = sorted(set(saved_paths) - set(like_paths))
            raise DataFormatError(
                f"{path} does not match the structure of like= (missing: {missing or 'none'}; "
                f"unexpected: {extra or 'none'}; order differs if both are empty)."
            )
        for key_path, leaf, want in zip(saved_paths, leaves, jax.tree.leaves(like)):
            shape = getattr(want, "shape", None)
            if shape is not None and tuple(shape) != leaf.shape:
                raise DataFormatError(f"{path}: {key_path} has shape {leaf.shape}, like= has {tuple(shape)}.")
        skeleton = like
    return jax.tree.unflatten(jax.tree.structure(skeleton), leaves)


def read_npz(path: str | Path, numeric: bool = True) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, or a DataFormatError naming the file and what is wrong.

    Missing, empty, truncated and corrupted files and pickled objects are refused; with
    ``numeric``, so is any array that is not finite numbers (strings, NaN, ±inf).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file.") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        reason = "it is empty" if path.stat().st_size == 0 else f"{type(error).__name__}: {error}"
        raise DataFormatError(f"{path} is not a readable .npz file ({reason}); write it with numpy.savez.") from None
    for name, array in arrays.items() if numeric else ():
        if array.dtype.kind not in "biuf":
            raise DataFormatError(f"{path}: array '{name}' has dtype {array.dtype}; it must hold numbers.")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DataFormatError(f"{path}: array '{name}' holds {np.sum(~np.isfinite(array))} NaN or infinite values.")
    return arrays


# -- checksums ---------------------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_arrays(arrays: Mapping[str, Any]) -> str:
    """Hex SHA-256 of named arrays: names (sorted), dtypes, shapes and values; order-independent."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        header = json.dumps([name, array.dtype.str, list(array.shape)])
        digest.update(len(header).to_bytes(8, "little") + header.encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# -- environment -------------------------------------------------------------------------------
def _git(source: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout jaxbench is imported from; (None, None) if it is not one."""
    source = Path(__file__).resolve().parent
    # Only trust a repository that tracks the package, not one that merely contains the venv.
    if _git(source, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None
    commit = _git(source, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(source, "status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_record(packages: Sequence[str] = ()) -> dict[str, Any]:
    """Where and with what a run was made: versions (core and ``packages``), git commit, devices, host, UTC time.

    Never fails for lack of git: ``git_commit`` and ``git_dirty`` (tracked files modified) are
    None outside a git checkout. Missing packages have version None.
    """
    from jaxbench import __version__

    commit, dirty = git_state()
    devices = jax.devices()
    return {
        "jaxbench_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in dict.fromkeys((*RECORDED_PACKAGES, *packages))},
        "devices": {
            "platform": devices[0].platform,
            "device_kind": devices[0].device_kind,
            "count": jax.device_count(),
            "process_count": jax.process_count(),
        },
        "hostname": socket.gethostname(),
        "timestamp_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
