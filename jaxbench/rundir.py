"""The run directory as a transaction: seeds, the resume fingerprint, the advisory lock, attempts.

A directory is in one of these states, read from ``manifest.json``'s ``status``:

- ``complete`` / ``degraded``: finished results; only ``--resume`` touches it (and recomputes nothing).
- ``failed`` (non-finite results), ``error`` (a stage raised), ``interrupted`` (Ctrl-C), or
  ``running`` with no process holding the lock (killed): ``--resume`` continues it, a plain run
  replaces it after saying so. Never a dead end.

``--resume`` is honoured only if the fingerprint (task, resolved config, seed, data source and
the sha256 of its files, code version) matches the manifest's; otherwise it stops with the diff.
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxbench import config as configs
from jaxbench import records
from jaxbench.errors import ConfigError

MANIFEST = "manifest.json"
LOCK = ".lock"
MAX_SEED = 2**63 - 1
KEY_DERIVATION = (
    "threefry2x32 key data [seed >> 32, seed & 0xffffffff] (= jax.random.key(seed) for seed < 2**32); "
    "streams fold_in(key, sha256(name)[:4] & 0x7fffffff)"
)
FINISHED = ("complete", "degraded")


def check_seed(seed: Any) -> int:
    """``seed`` as an int in 0 … 2**63 − 1, or a ConfigError saying so."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"--seed {seed!r}: a seed must be an integer in 0 … 2**63-1 ({MAX_SEED}).")
    return int(seed)


def root_key(seed: int) -> jax.Array:
    """The root key of a run: threefry key data ``[seed >> 32, seed & 0xffffffff]``.

    Every seed in 0 … 2**63 − 1 gives a distinct key (the map is one to one), and seeds below
    2**32 give exactly ``jax.random.key(seed)`` under the default threefry implementation.
    """
    seed = check_seed(seed)
    words = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
    return jax.random.wrap_key_data(words, impl="threefry2x32")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def fingerprint(
    task_id: str, config: Mapping[str, Any], seed: int, data_path: Path | None, data_files: Callable | None
) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (JSON-able)."""
    from jaxbench import __version__

    files = {}
    if data_path is not None:
        listed = data_files(data_path) if data_files is not None else ([data_path] if data_path.is_file() else [])
        files = {str(f): records.sha256_file(f) for f in listed if Path(f).is_file()}
    commit, _ = records.git_state()
    return records.to_jsonable(
        {
            "task_id": task_id,
            "config": dict(config),
            "seed": seed,
            "data": "generated" if data_path is None else str(data_path),
            "data_sha256": files,
            "code": {"jaxbench": __version__, "git_commit": commit},
        }
    )


def describe_difference(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """``key: old -> new`` for every fingerprint entry that differs (config keys by dotted path)."""
    flat_a, flat_b = configs.flatten(dict(recorded)), configs.flatten(dict(wanted))
    keys = sorted(k for k in set(flat_a) | set(flat_b) if flat_a.get(k) != flat_b.get(k))
    return "; ".join(f"{k}: {flat_a.get(k, '(none)')!r} -> {flat_b.get(k, '(none)')!r}" for k in keys)


class RunLock:
    """An advisory ``fcntl`` lock on ``<run_dir>/.lock``: one process per run directory."""

    def __init__(self, run_dir: Path):
        self.file = run_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock, or raises a ConfigError naming the process that holds it."""
        import fcntl

        fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self.file.read_text().strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"{self.file.parent}: another jaxbench process (pid {holder}) is working in this run directory; "
                "wait for it to finish or choose another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Releases the lock (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def open_run_dir(
    run_dir: Path, wanted: Mapping[str, Any], resume: bool, log: Callable[[str], None]
) -> tuple[RunLock, dict[str, Any] | None, bool]:
    """Locks ``run_dir`` and decides what to do with it before anything is computed.

    Returns ``(lock, previous manifest or None, created)``. A plain run into a directory whose
    run did not finish replaces it (after saying so); a finished run needs ``resume``; a resume
    whose fingerprint differs from ``wanted`` is refused with the diff.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a directory; choose another --out.")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir)
        lock.acquire()
    except OSError as error:  # read-only, permission denied, a file in the path, no space
        raise ConfigError(f"--out {run_dir}: cannot write there ({error.strerror}); choose a writable --out.") from None
    try:
        previous = _inspect(run_dir, wanted, resume, log)
    except BaseException:
        lock.release()
        raise
    return lock, previous, created


def _inspect(run_dir: Path, wanted: Mapping[str, Any], resume: bool, log: Callable[[str], None]) -> dict | None:
    manifest_file = run_dir / MANIFEST
    others = [p for p in run_dir.iterdir() if p.name != LOCK]
    if not manifest_file.exists():
        if others:
            raise ConfigError(
                f"{run_dir} exists and is not a jaxbench run directory (no {MANIFEST}); choose another --out."
            )
        return None
    manifest = records.read_json(manifest_file)
    status = manifest.get("status", "unknown")
    if not resume:
        if status in FINISHED:
            raise ConfigError(
                f"{run_dir} already holds a {status} run; pass --resume to reuse it, or choose another --out."
            )
        log(f"[run] {run_dir} held an unfinished run (status '{status}'); replacing it (--resume would continue it).")
        for path in others:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        return None
    recorded = manifest.get("fingerprint")
    if recorded is None:
        raise ConfigError(
            f"--resume: {manifest_file} has no fingerprint (written by an older jaxbench); rerun without --resume."
        )
    if recorded != wanted:
        raise ConfigError(
            f"--resume: {run_dir} was started with different settings ({describe_difference(recorded, wanted)}). "
            "Resume with the same ones, or rerun without --resume into another --out."
        )
    return manifest
