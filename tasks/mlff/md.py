"""Embedded trajectory generator: Langevin molecular dynamics labelled by GFN2-xTB (tblite + ASE).

A run starts from the shipped GFN2-xTB minimum (``geometries.py``) with Maxwell–Boltzmann
velocities (no net momentum or rotation), thermalises for ``equilibration_steps`` and then saves
every ``save_every``-th step: positions (Å), the GFN2-xTB energy (eV) and forces (eV/Å) of that
geometry, and the step index. The integrator is ASE's Langevin (Vanden-Eijnden–Ciccotti) with the
centre of mass fixed (``FixCom``); the labels are the calculator's raw forces, not the
COM-projected ones.

Randomness: every random number of a run (initial velocities, Langevin noise) comes from one
numpy PCG64 stream seeded from the jax key's data, so the same key gives the same trajectory
bit for bit (tblite runs on one OpenMP thread here, which is also the fastest for molecules this
small). Runs are cached on disk keyed by the configuration, the key, the number of frames, the
starting geometry and the tblite/ASE versions (:func:`cache_path`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from numpy.typing import ArrayLike

from jaxbench import progress
from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.records import atomic_write_json, read_arrays, write_arrays

from .data import Trajectory
from .geometries import starting_geometry
from .settings import GENERATOR_VERSION, MDConfig, generator_datacard, package_version

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_FIELDS = ("species", "positions", "energy", "forces", "time_index")
datacard = generator_datacard  # what generated data are (kept under its old name)


# -- keys --------------------------------------------------------------------------------------
def key_words(key: jax.Array | int) -> tuple[int, ...]:
    """The uint32 words of one jax key (typed or raw; an int is a seed for ``jax.random.key``)."""
    if isinstance(key, (int, np.integer)):
        key = jax.random.key(int(key))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ConfigError(f"expected one key, got a batch of shape {key.shape}; use generate_trajectories.")
        data = jax.random.key_data(key)
    else:
        data = np.asarray(key)
        if data.dtype != np.uint32 or data.ndim != 1:
            raise ConfigError(
                f"expected a jax key (jax.random.key(seed)) or an int seed; got {type(key).__name__} "
                f"with dtype {getattr(data, 'dtype', None)} and shape {getattr(data, 'shape', None)}."
            )
    return tuple(int(w) for w in np.asarray(data).ravel())


def _split_keys(keys) -> list[tuple[int, ...]]:
    """Key words of each item: a list of keys or int seeds, or a batched key array (K,)."""
    dtype = getattr(keys, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and keys.ndim != 1:
        raise ConfigError(f"expected a 1-D batch of keys, got shape {keys.shape}.")
    return [key_words(k) for k in keys]


# -- one thread ---------------------------------------------------------------------------------
def _loaded_openmp_runtimes() -> list[str]:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    return sorted({line.split()[-1] for line in maps.splitlines() if "libgomp" in line or "libiomp" in line})


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Runs tblite on one OpenMP thread (faster for small molecules and bit-reproducible).

    Sets the thread count of every OpenMP runtime loaded in this process (after importing tblite)
    and restores it afterwards.
    """
    import tblite.ase  # noqa: F401  (loads the OpenMP runtime)

    libraries = []
    for path in _loaded_openmp_runtimes():
        try:
            library = ctypes.CDLL(path)
            libraries.append((library, library.omp_get_max_threads()))
            library.omp_set_num_threads(1)
        except (OSError, AttributeError):
            continue
    try:
        yield
    finally:
        for library, threads in libraries:
            library.omp_set_num_threads(threads)


def make_calculator(config: MDConfig | None = None) -> Any:
    """A tblite ASE calculator with the config's method, SCF accuracy and electronic temperature."""
    from tblite.ase import TBLite

    config = config or MDConfig()
    return TBLite(
        method=config.method,
        accuracy=config.accuracy,
        electronic_temperature=config.electronic_temperature_K,
        verbosity=0,
    )


def label_frames(
    species: ArrayLike, positions: ArrayLike, config: MDConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(energy (F,) eV, forces (F, N, 3) eV/Å) of frames (F, N, 3) Å with the config's calculator."""
    from ase import Atoms

    positions = np.asarray(positions, np.float64)
    atoms = Atoms(numbers=np.asarray(species), positions=positions[0])
    atoms.calc = make_calculator(config)
    energy = np.empty(positions.shape[0])
    forces = np.empty_like(positions)
    with one_thread():
        for i, frame in enumerate(positions):
            atoms.set_positions(frame)
            energy[i] = atoms.get_potential_energy()
            forces[i] = atoms.get_forces()
    return energy, forces


def _run_md(words: tuple[int, ...], config: MDConfig, n_frames: int) -> dict[str, np.ndarray]:
    """One Langevin run as arrays (numpy only, so that worker processes can run it)."""
    from ase import Atoms, units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
    from tblite.exceptions import TBLiteRuntimeError

    species, start = starting_geometry(config.molecule)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(words))))
    atoms = Atoms(numbers=species, positions=start)
    atoms.calc = make_calculator(config)
    thermalize_momenta(atoms, config.temperature_K, rng=rng)
    Stationary(atoms, preserve_temperature=False)
    ZeroRotation(atoms, preserve_temperature=False)
    atoms.set_constraint(FixCom())
    dynamics = Langevin(
        atoms,
        timestep=config.timestep_fs * units.fs,
        temperature_K=config.temperature_K,
        friction=config.friction_per_fs / units.fs,
        fixcm=False,  # FixCom above does it (ASE's fixcm=True is deprecated)
        rng=rng,
    )
    positions = np.empty((n_frames, species.shape[0], 3))
    energy = np.empty(n_frames)
    forces = np.empty_like(positions)
    time_index = np.empty(n_frames, np.int64)
    total = config.equilibration_steps + n_frames * config.save_every
    saved = 0
    description = f"mlff: MD frames of {config.molecule} ({config.method})"
    with one_thread(), progress.bar(description, n_frames) as advance:
        try:
            for _ in dynamics.irun(total):
                step = dynamics.nsteps - config.equilibration_steps  # steps since equilibration
                if step <= 0 and dynamics.nsteps % 50 == 0:  # the bar waits at 0 frames meanwhile
                    advance(0, info=f"equilibrating, step {dynamics.nsteps}/{config.equilibration_steps}")
                if step > 0 and step % config.save_every == 0:
                    positions[saved] = atoms.get_positions()
                    energy[saved] = atoms.get_potential_energy(apply_constraint=False)
                    forces[saved] = atoms.get_forces(apply_constraint=False)
                    time_index[saved] = dynamics.nsteps
                    saved += 1
                    advance(info=f"T {atoms.get_temperature():.0f} K")
        except TBLiteRuntimeError as error:
            raise RuntimeError(
                f"GFN2-xTB failed at MD step {dynamics.nsteps} of {config.molecule} ({error}). The "
                "trajectory left the chemically sensible region; lower temperature_K or timestep_fs."
            ) from error
    assert saved == n_frames, (saved, n_frames)
    return {
        "species": species.astype(np.int32),
        "positions": positions,
        "energy": energy,
        "forces": forces,
        "time_index": time_index,
    }


def _worker_init() -> None:
    for name in _THREAD_VARIABLES:
        os.environ[name] = "1"


# -- cache ---------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$JAXBENCH_CACHE`` or ``~/.cache/jaxbench``."""
    return Path(os.environ.get("JAXBENCH_CACHE") or Path.home() / ".cache" / "jaxbench")


def cache_path(config: MDConfig, key: jax.Array | int, n_frames: int, cache_dir: str | Path | None = None) -> Path:
    """Where a run is cached: ``<cache_dir>/mlff/<molecule>-<n_frames>f-<hash>``.

    The hash covers the configuration, the key's data, the number of frames, the starting
    geometry, GENERATOR_VERSION and the tblite and ASE versions.
    """
    species, start = starting_geometry(config.molecule)
    identity = {
        "config": dataclasses.asdict(config),
        "key": list(key_words(key)),
        "n_frames": int(n_frames),
        "geometry": hashlib.sha256(species.tobytes() + start.tobytes()).hexdigest(),
        "generator_version": GENERATOR_VERSION,
        "tblite": package_version("tblite"),
        "ase": package_version("ase"),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "mlff" / f"{config.molecule}-{int(n_frames)}f-{digest}"


def _read_cached(path: Path, n_frames: int) -> Trajectory | None:
    """The cached trajectory, or None if it is missing or incomplete (then it is made again)."""
    if not path.is_dir():
        return None
    try:
        arrays = read_arrays(path)
    except DataFormatError:
        return None
    if set(arrays) != set(_FIELDS) or arrays["positions"].shape[0] != n_frames:
        return None
    return Trajectory(**{name: arrays[name] for name in _FIELDS})


def _write_cached(path: Path, arrays: dict[str, np.ndarray], card: dict) -> None:
    write_arrays(path, arrays)
    atomic_write_json(path.with_name(path.name + ".datacard.json"), card)


def _cache_dir(cache: bool | str | Path) -> Path | None:
    if cache is False or cache is None:
        return None
    return default_cache_dir() if cache is True else Path(cache)


# -- public generators -----------------------------------------------------------------------------
def _config(molecule: str, options: dict) -> MDConfig:
    try:
        return MDConfig(molecule=molecule, **options)
    except TypeError as error:
        fields = ", ".join(f.name for f in dataclasses.fields(MDConfig) if f.name != "molecule")
        raise ConfigError(f"{error}; MD options are: {fields}.") from None


def _check_frames(n_frames: int) -> int:
    if int(n_frames) != n_frames or n_frames < 1:
        raise ConfigError(f"n_frames must be a positive integer; got {n_frames!r}.")
    return int(n_frames)


def generate_trajectory(
    key: jax.Array | int, molecule: str, n_frames: int, *, cache: bool | str | Path = False, **options
) -> Trajectory:
    """One Langevin trajectory of ``molecule`` with GFN2-xTB labels (Å, eV, eV/Å), in this process.

    ``options`` are :class:`MDConfig` fields: temperature_K=500, timestep_fs=0.5, save_every=1,
    equilibration_steps=1000, friction_per_fs=0.01, method="GFN2-xTB", accuracy=1.0,
    electronic_temperature_K=300. ``cache``: False, True (:func:`default_cache_dir`) or a
    directory; a cached run is read instead of simulated and equals the fresh run.
    About 8-11 ms per aspirin step and 1-3 ms per ethanol step on one core.
    """
    n_frames = _check_frames(n_frames)
    config = _config(molecule, options)
    words = key_words(key)
    root = _cache_dir(cache)
    path = cache_path(config, key, n_frames, root) if root is not None else None
    if path is not None and (cached := _read_cached(path, n_frames)) is not None:
        return cached
    arrays = _run_md(words, config, n_frames)
    if path is not None:
        _write_cached(path, arrays, datacard(config, n_frames))
    return Trajectory(**arrays)


def generate_trajectories(
    keys: jax.Array | list[int],
    molecule: str,
    n_frames: int,
    *,
    processes: int | None = None,
    cache: bool | str | Path = False,
    **options,
) -> list[Trajectory]:
    """Independent trajectories, one per key (or int seed), run in parallel spawned processes.

    ``keys``: a batch of keys (shape (K,)), a list of keys or a list of int seeds. Each worker
    runs tblite on one thread; ``processes`` defaults to min(K, cpu count). With one process
    (or one run left after the cache) the run happens in this process. Returns the trajectories
    in key order; ``options`` and ``cache`` as in :func:`generate_trajectory`. Spawned workers
    import the caller's ``__main__``: call this from under ``if __name__ == "__main__":`` in
    scripts.
    """
    n_frames = _check_frames(n_frames)
    config = _config(molecule, options)
    all_words = _split_keys(keys)
    root = _cache_dir(cache)
    paths = [cache_path(config, _raw_key(w), n_frames, root) if root is not None else None for w in all_words]
    results: list[Trajectory | None] = [_read_cached(path, n_frames) if path is not None else None for path in paths]
    todo = [i for i, result in enumerate(results) if result is None]
    n_processes = min(len(todo), processes or os.cpu_count() or 1)
    if n_processes <= 1:
        outputs = [_run_md(all_words[i], config, n_frames) for i in todo]
    else:
        context = multiprocessing.get_context("spawn")
        saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
        os.environ.update({name: "1" for name in _THREAD_VARIABLES})  # inherited by the workers
        try:
            with context.Pool(n_processes, initializer=_worker_init) as pool:
                outputs = pool.starmap(_run_md, [(all_words[i], config, n_frames) for i in todo], chunksize=1)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    card = datacard(config, n_frames)
    for i, arrays in zip(todo, outputs):
        if paths[i] is not None:
            _write_cached(paths[i], arrays, card)
        results[i] = Trajectory(**arrays)
    return results


def _raw_key(words: tuple[int, ...]) -> np.ndarray:
    """The raw (uint32) key with these words; :func:`key_words` gives them back."""
    return np.asarray(words, dtype=np.uint32)
