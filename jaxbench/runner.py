"""Resumable runs: a run directory whose stages and sweep chunks are checkpointed atomically.

A task's ``pipeline(run)`` is written as a sequence of ``run.stage(name, fn)`` calls (each
computes a pytree of arrays once and saves it) and ``run.sweep(name, fn, shared, batch)`` calls
(a batched function over a long leading axis, done in chunks that are saved as they finish and
sharded over every device). ``--resume`` loads what exists and computes the rest, so an
interrupted run loses at most one chunk, and gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxbench import records
from jaxbench.errors import ConfigError, JaxbenchError
from jaxbench.sharding import batch_mesh, pad_to_multiple, replicate, shard_batched

MANIFEST = "manifest.json"


class Run:
    """The context a pipeline runs in: a directory, a root key, the config and checkpointed stages.

    Attributes:
      run_dir: the run directory.
      task_id, config, seed: what is being run; ``key`` is ``jax.random.key(seed)``.
      resume: load finished stages and chunks instead of recomputing them.
      progress: show progress bars (rich) on long loops.
      data_path: a real data file to use instead of the task's generator (None: generate).
    """

    def __init__(
        self,
        run_dir: str | Path,
        task_id: str,
        config: Mapping[str, Any],
        seed: int,
        *,
        resume: bool = False,
        progress: bool = True,
        mesh: jax.sharding.Mesh | None = None,
        log: Callable[[str], None] = print,
        data_path: str | Path | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.task_id = task_id
        self.config = dict(config)
        self.seed = int(seed)
        self.key = jax.random.key(self.seed)
        self.resume = resume
        self.progress = progress
        self.mesh = mesh if mesh is not None else batch_mesh()
        self.log = log
        self.data_path = None if data_path is None else Path(data_path)
        self.timings: dict[str, float] = {}
        self.data_checksums: dict[str, str] = {}
        self._done: dict[str, Any] = {}  # stages finished in this process (studies reuse them)

    # -- directory ---------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def _stage_file(self, name: str) -> Path:
        return self.path("stages", f"{name}.npz")

    # -- stages ------------------------------------------------------------------------------
    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` once: its pytree of arrays is saved to ``stages/<name>.npz`` and reloaded on resume.

        A stage already computed or loaded in this process is returned as it is, so studies that
        run after the pipeline reuse its data and models without recomputing them.
        """
        if name in self._done:
            return self._done[name]
        file = self._stage_file(name)
        if self.resume and file.exists():
            self.log(f"[resume] stage '{name}' loaded from {file.relative_to(self.run_dir)}")
            self._done[name] = records.load_pytree(file)
            return self._done[name]
        start = time.perf_counter()
        with self._status(f"stage '{name}' running"):
            out = jax.block_until_ready(fn())
        self.timings[name] = time.perf_counter() - start
        records.save_pytree(file, jax.tree.map(np.asarray, out))
        self.log(f"[stage] {name}: {self.timings[name]:.1f} s")
        self._done[name] = out
        return out

    def cached(self, name: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` once per process, kept in memory only (objects with their own checkpoints,
        such as a model trained with orbax, that studies reuse)."""
        key = f"memory:{name}"
        if key not in self._done:
            self._done[key] = fn()
        return self._done[key]

    def stage_hook(self, prefix: str) -> Callable[[str, Callable[[], Any]], Any]:
        """``stage(name, fn)`` for a study: checkpoints its units as stages ``<prefix>.<name>``."""
        return lambda name, fn: self.stage(f"{prefix}.{name}", fn)

    @contextlib.contextmanager
    def _status(self, message: str) -> Iterator[None]:
        """A rich spinner with elapsed time while a stage runs (nothing without progress)."""
        if not self.progress:
            yield
            return
        from rich.console import Console

        with Console(stderr=True).status(message):
            yield

    def sweep(
        self,
        name: str,
        fn: Callable[[Any, Any], Any],
        shared: Any,
        batch: Any,
        *,
        chunk_size: int,
        description: str | None = None,
    ) -> Any:
        """``fn(shared, batch)`` over the leading axis of ``batch`` in saved, sharded chunks.

        ``fn`` must treat batch items independently (derive keys from item indices in ``batch``)
        so the result does not depend on ``chunk_size`` or the device count. Returns the
        concatenated outputs as numpy arrays.
        """
        n = int(jax.tree.leaves(batch)[0].shape[0])
        devices = self.mesh.size
        chunk_size = max(devices, -(-int(chunk_size) // devices) * devices)
        chunk_dir = self.path("stages", name)
        sharded = shard_batched(fn, self.mesh)
        shared = replicate(shared, self.mesh)
        outputs = []
        n_chunks = -(-n // chunk_size)
        start = time.perf_counter()
        with self._progress(description or name, n_chunks) as advance:
            for i in range(n_chunks):
                file = chunk_dir / f"chunk_{i:05d}.npz"
                lo, hi = i * chunk_size, min(n, (i + 1) * chunk_size)
                if self.resume and file.exists():
                    out = records.load_pytree(file)
                else:
                    piece = jax.tree.map(lambda x: np.asarray(x)[lo:hi], batch)
                    piece, true_n = pad_to_multiple(piece, devices)
                    out = sharded(shared, piece)
                    out = jax.tree.map(lambda x: np.asarray(x)[:true_n], out)
                    records.save_pytree(file, out)
                outputs.append(out)
                advance()
        self.timings[name] = time.perf_counter() - start
        return jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *outputs)

    @contextlib.contextmanager
    def _progress(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        if not self.progress or total <= 1:
            yield lambda: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

        columns = (
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)


def prepare_run_dir(run_dir: Path, task_id: str, config: Mapping[str, Any], seed: int, resume: bool) -> bool:
    """Checks the run directory before anything is written; returns True if it must be created.

    A finished or partial run is only continued with ``resume``, and only with the same task,
    config and seed, so resumed numbers are those of an uninterrupted run.
    """
    manifest_file = run_dir / MANIFEST
    if not run_dir.exists():
        return True
    if not manifest_file.exists():
        if any(run_dir.iterdir()):
            raise ConfigError(
                f"{run_dir} exists and is not a jaxbench run directory (no {MANIFEST}). "
                "Choose another --out."
            )
        return False
    if not resume:
        raise ConfigError(
            f"{run_dir} already holds a run. Pass --resume to continue it, or choose another --out."
        )
    manifest = records.read_json(manifest_file)
    recorded = (manifest.get("task_id"), manifest.get("config"), manifest.get("seed"))
    wanted = (task_id, records.to_jsonable(dict(config)), seed)
    if recorded != wanted:
        diff = _describe_difference(recorded, wanted)
        raise ConfigError(
            f"--resume: {run_dir} was started with a different {diff}. Resume with the same "
            "task, config and seed, or choose another --out."
        )
    return False


def _describe_difference(recorded: tuple, wanted: tuple) -> str:
    names = ("task id", "config", "seed")
    parts = []
    for name, a, b in zip(names, recorded, wanted):
        if a != b:
            if name == "config" and isinstance(a, dict) and isinstance(b, dict):
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                parts.append(f"config ({', '.join(f'{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in keys)})")
            else:
                parts.append(f"{name} ({a!r} -> {b!r})")
    return "; ".join(parts)


def execute(task, run_dir: str | Path, seed: int = 0, *, resume: bool = False, progress: bool = True,
            data: str | Path | None = None, log: Callable[[str], None] = print,
            studies: Sequence[str] = ()) -> Run:
    """Runs ``task.pipeline``, then the named ``studies``, in ``run_dir``; writes the report.

    The manifest is written before and after. If the pipeline fails with a
    :class:`JaxbenchError` before any stage finished, a directory created by this call is
    removed, so bad input never leaves a half-written run directory. Studies run after the
    pipeline in the same process and reuse its stages; each saves ``studies/<name>/``.
    """
    from jaxbench.studies import resolve_names, run_studies

    studies = resolve_names(studies, tuple(task.studies), task.id)
    run_dir = Path(run_dir)
    created = prepare_run_dir(run_dir, task.id, task.config, seed, resume)
    run = Run(run_dir, task.id, task.config, seed, resume=resume, progress=progress, log=log, data_path=data)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    manifest = {
        "task_id": task.id,
        "config": records.to_jsonable(dict(task.config)),
        "seed": seed,
        "key": f"jax.random.key({seed})",
        "data": str(data) if data is not None else "generated",
        "studies": list(studies),
        "status": "running",
        "environment": records.environment_record(),
    }
    records.atomic_write_json(run_dir / MANIFEST, manifest)
    try:
        metrics = task.pipeline(run)
    except JaxbenchError:
        if created and not any(run.path("stages").glob("**/*.npz")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    records.atomic_write_json(run_dir / "metrics.json", metrics)
    run_studies(task, run, studies)
    manifest.update(
        status="complete",
        wall_time_s=time.time() - started,
        timings_s=run.timings,
        data_checksums=run.data_checksums,
    )
    records.atomic_write_json(run_dir / MANIFEST, manifest)
    write_run_report(task, run_dir, manifest)
    return run


def write_run_report(task, run_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """``report.html``: the task's sections, then a section per study found in ``run_dir``."""
    from jaxbench.report import write_report
    from jaxbench.studies import study_sections

    sections = [*task.report_sections(run_dir), *study_sections(run_dir)]
    return write_report(run_dir, f"jaxbench report: {task.id}", sections, manifest)
