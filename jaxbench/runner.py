"""The runner: the one driver of a task, over a resumable run directory.

``execute(task, run_dir, seed)`` calls the task's fields in order (see :mod:`jaxbench.task`)::

    data -> fit -> conditions -> prepare -> evaluate (sharded, chunked sweep) -> per-sample arrays
    -> score -> metrics.json, summary.txt, task files -> studies -> report.html

Every stage is checkpointed atomically (``stages/<name>.npz``, sweep chunks under
``stages/evaluate/``) and reloaded as the task's own types on ``--resume``, so an interrupted run
loses at most one chunk and gives the numbers of an uninterrupted one. Keys come from named
streams (:func:`stream_key`), never from integers that two files must keep in step.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxbench import config as configs
from jaxbench import progress as progress_display
from jaxbench import records, rundir
from jaxbench.errors import ConfigError, JaxbenchError
from jaxbench.sharding import batch_mesh, pad_to_multiple, replicate, shard_batched
from jaxbench.task import RunView, Task

MANIFEST = rundir.MANIFEST


def stream_key(root: jax.Array, name: str) -> jax.Array:
    """The key of the stream ``name`` (``data``, ``fit``, ``study/rotation_scan``, ...) of ``root``:
    ``fold_in(root, first 31 bits of sha256(name))``."""
    word = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") & 0x7FFFFFFF
    return jax.random.fold_in(root, word)


class Runner:
    """The run directory's stages, sweeps and progress (tasks see it only as a ``Stage``).

    ``load_only`` forbids computing: a missing stage is an error (``jaxbench report``).
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        resume: bool = False,
        progress: bool = True,
        mesh: jax.sharding.Mesh | None = None,
        log: Callable[[str], None] = print,
        load_only: bool = False,
    ):
        self.run_dir = Path(run_dir)
        self.resume = resume or load_only
        self.load_only = load_only
        self.show_progress = progress
        self.mesh = mesh if mesh is not None else batch_mesh()
        self.log = log
        self.timings: dict[str, float] = {}
        self._done: dict[str, Any] = {}
        self._sharded: dict[Any, Callable] = {}

    def path(self, *parts: str) -> Path:
        """A path inside the run directory."""
        return self.run_dir.joinpath(*parts)

    def _missing(self, what: str) -> None:
        if self.load_only:
            raise ConfigError(
                f"{self.run_dir}: {what} was never computed; finish the run with `jaxbench run ... --resume` first."
            )

    # -- stages --------------------------------------------------------------------------------
    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` once: saved to ``stages/<name>.npz``, reloaded on resume, memoised in-process."""
        if name in self._done:
            return self._done[name]
        file = self.path("stages", f"{name}.npz")
        if self.resume and file.exists():
            self._done[name] = records.load_pytree(file)
            if not self.load_only:
                self.log(f"[resume] stage '{name}' loaded from {file.relative_to(self.run_dir)}")
            return self._done[name]
        self._missing(f"stage '{name}'")
        start = time.perf_counter()
        with self.spinner(f"stage '{name}' running"):
            out = jax.block_until_ready(fn())
        self.timings[name] = time.perf_counter() - start
        records.save_pytree(file, jax.tree.map(np.asarray, out))
        self.log(f"[stage] {name}: {self.timings[name]:.1f} s")
        self._done[name] = out
        return out

    def stages(self, prefix: str) -> _PrefixedStage:
        """The ``Stage`` a task's ``fit`` or a study gets: units ``<prefix>.<name>``."""
        return _PrefixedStage(self, prefix)

    def spinner(self, message: str) -> contextlib.AbstractContextManager[None]:
        """A spinner with the elapsed time (:func:`jaxbench.progress.spinner`); nothing without progress."""
        return progress_display.spinner(message) if self.show_progress else contextlib.nullcontext()

    def progress(self, description: str, total: int) -> contextlib.AbstractContextManager[Callable[..., None]]:
        """A rich bar with counts and elapsed time; yields ``advance(steps=1, info=None)``."""
        if not self.show_progress:
            return contextlib.nullcontext(lambda steps=1, info=None: None)
        return progress_display.bar(description, total)

    # -- the sharded sweep ------------------------------------------------------------------------
    def _sharded_fn(self, fn: Callable[[Any, Any, Any], Any]) -> Callable:
        if fn not in self._sharded:

            def keyed(shared_and_root, batch):
                shared, root = shared_and_root
                items, index = batch
                keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.wrap_key_data(root), i))(index)
                return fn(shared, items, keys)

            self._sharded[fn] = shard_batched(keyed, self.mesh)
        return self._sharded[fn]

    def sweep(
        self,
        fn: Callable[[Any, Any, Any], Any],
        shared: Any,
        items: Any,
        key: jax.Array,
        *,
        chunk_size: int,
        unit: str | None = None,
        description: str | None = None,
    ) -> Any:
        """``fn(shared, items[chunk], keys[chunk])`` over the leading axis of ``items``.

        Items are laid over every device of the mesh and ``shared`` is replicated; ``keys[i] =
        fold_in(key, i)`` by global index, so the result does not depend on ``chunk_size`` or the
        device count. With ``unit``, chunks are saved under ``stages/<unit>/`` and reloaded on
        resume. Returns the concatenated outputs as numpy arrays.
        """
        n = int(jax.tree.leaves(items)[0].shape[0])
        devices = self.mesh.size
        chunk_size = max(devices, -(-int(chunk_size) // devices) * devices)
        sharded = self._sharded_fn(fn)
        replicated = replicate((shared, jax.random.key_data(key)), self.mesh)
        n_chunks = -(-n // chunk_size)
        outputs = []
        start = time.perf_counter()
        with self.progress(description or unit or "evaluate", n_chunks) as advance:
            for i in range(n_chunks):
                file = None if unit is None else self.path("stages", unit, f"chunk_{i:05d}.npz")
                lo, hi = i * chunk_size, min(n, (i + 1) * chunk_size)
                if file is not None and self.resume and file.exists():
                    out = records.load_pytree(file)
                else:
                    self._missing(f"chunk {i} of '{unit}'")
                    piece = (jax.tree.map(lambda x: np.asarray(x)[lo:hi], items), np.arange(lo, hi, dtype=np.int32))
                    piece, true_n = pad_to_multiple(piece, devices)
                    out = jax.tree.map(lambda x: np.asarray(x)[:true_n], sharded(replicated, piece))
                    if file is not None:
                        records.save_pytree(file, out)
                outputs.append(out)
                advance()
        if unit is not None:
            self.timings[unit] = self.timings.get(unit, 0.0) + time.perf_counter() - start
        return jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *outputs)


class _PrefixedStage:
    """``Stage`` for a task: ``stage(name, fn)``, ``directory(name)``, ``progress(...)``."""

    def __init__(self, runner: Runner, prefix: str):
        self._runner, self._prefix = runner, prefix

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        return self._runner.stage(f"{self._prefix}.{name}", fn)

    def directory(self, name: str) -> Path:
        return self._runner.path("checkpoints", f"{self._prefix}.{name}")

    def progress(self, description: str, total: int):
        return self._runner.progress(description, total)


# -- the run directory ----------------------------------------------------------------------------
def _data_checksums(data: Any, file_sums: Mapping[str, str]) -> dict[str, str]:
    """sha256 of the data's arrays, beside those of the files ``load`` read (hashed once, for the
    fingerprint)."""
    leaves = jax.tree_util.tree_flatten_with_path(data)[0]
    return {"data": records.sha256_arrays({jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}), **file_sums}


def flat_arrays(tree: Any) -> dict[str, np.ndarray]:
    """A pytree's leaves by dotted key path (``mu_true``, ``train.x``, dict key ``hist``), for zarr arrays."""
    return {
        jax.tree_util.keystr(p, simple=True, separator=".") or "value": np.asarray(v)
        for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def check_per_sample(per_sample: Mapping[str, Any], n: int, task_id: str) -> dict[str, np.ndarray]:
    """Per-sample metrics as numpy ``(N, ...)`` arrays (one value, or one per lead time etc., per item), or a
    ConfigError naming the metric."""
    out = {}
    for name, value in per_sample.items():
        array = np.asarray(value)
        if array.shape[:1] != (n,):
            raise ConfigError(
                f"{task_id}: per_sample_metrics['{name}'] has shape {array.shape}; every per-sample "
                f"metric must be ({n},) or ({n}, ...), its leading axis the items."
            )
        out[name] = array
    return out


def run_pipeline(task: Task, runner: Runner, key: jax.Array, data_path: Path | None) -> tuple[RunView, Any]:
    """Every stage of ``task`` through ``runner``: the results as a :class:`RunView`, and ``shared``."""
    config = task.config

    def make_data():  # checked before the stage is saved: data that cannot work leave no stage behind
        if data_path is None:
            data = task.generate(stream_key(key, "data"), config)
        else:
            data = task.load(data_path, stream_key(key, "data"), config)
        if task.check_data is not None:
            task.check_data(data, config)
        return data

    data = runner.stage("data", make_data)
    params = task.fit(stream_key(key, "fit"), data, config, runner.stages("fit"))
    items = runner.stage("conditions", lambda: task.conditions(stream_key(key, "conditions"), data, config))
    shared = task.prepare(params, data, config)
    outputs = runner.sweep(
        task.evaluate,
        shared,
        items,
        stream_key(key, "evaluate"),
        chunk_size=task.chunk_size,
        unit="evaluate",
        description=f"{task.id}: evaluate",
    )
    n = int(jax.tree.leaves(items)[0].shape[0])
    per_sample = check_per_sample(task.per_sample_metrics(outputs, items), n, task.id)
    metrics = runner.stage("score", lambda: task.score(per_sample, outputs, items, stream_key(key, "score")))
    status, note = run_status(per_sample, metrics, task.partial, task.undefined_metrics)
    metrics = records.to_jsonable(metrics)
    features = {k: np.asarray(v) for k, v in task.features(items, data).items()}
    view = RunView(
        config,
        "generated" if data_path is None else str(data_path),
        data,
        params,
        items,
        outputs,
        per_sample,
        features,
        metrics,
        runner.run_dir,
        status,
        note,
    )
    return view, shared


def run_status(
    per_sample: Mapping[str, np.ndarray], metrics: Any, partial: bool, undefined: Sequence[str] = ()
) -> tuple[str, str]:
    """``(status, note)`` from the finiteness of the results: ``complete``, ``degraded`` or ``failed``.

    Non-finite headline metrics fail a run. Items with a non-finite per-sample metric fail it too,
    unless the task allows partial results (``Task.partial``) and some items are finite: then it is
    ``degraded`` and the note gives the count. A NaN of a metric matching one of the ``undefined``
    patterns (``Task.undefined_metrics``, fnmatch) is a value that does not exist, not a failure (a CSI
    of a frame without rain); an inf still counts.
    """
    n = len(next(iter(per_sample.values()))) if per_sample else 0
    bad_items, bad_names = np.zeros(n, bool), []
    for name, values in per_sample.items():
        if values.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(values)
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in undefined):
            bad &= ~np.isnan(values)
        if bad.any():
            bad_items |= bad.reshape(n, -1).any(axis=1)
            bad_names.append(name)
    bad_metrics = [
        jax.tree_util.keystr(path, simple=True, separator=".")
        for path, value in jax.tree_util.tree_flatten_with_path(metrics)[0]
        if isinstance(value, (float, np.ndarray, np.floating, jax.Array))
        and np.asarray(value).dtype.kind in "fc"
        and not np.isfinite(np.asarray(value)).all()
    ]
    count = int(bad_items.sum())
    items_note = f"{count} of {n} items have non-finite {', '.join(bad_names)}"
    if bad_metrics:
        shown = ", ".join(bad_metrics[:6]) + (f" (+{len(bad_metrics) - 6} more)" if len(bad_metrics) > 6 else "")
        return "failed", f"non-finite metrics: {shown}" + (f"; {items_note}" if count else "")
    if count and (not partial or count == n):
        return "failed", items_note
    if count:
        return "degraded", f"{items_note}; the metrics use the other {n - count}"
    return "complete", ""


def status_line(view: RunView) -> str:
    """``FAILED: why`` / ``DEGRADED: why``, the first line of summary.txt and the report; "" when complete."""
    return "" if view.status == "complete" else f"{view.status.upper()}: {view.note}"


def _write_results(task: Task, runner: Runner, view: RunView) -> None:
    from jaxbench.report import render_table_text

    records.write_arrays(runner.path("arrays", "per_sample"), view.per_sample)
    records.write_arrays(runner.path("arrays", "items"), flat_arrays(view.items))
    records.write_arrays(runner.path("arrays", "outputs"), flat_arrays(view.outputs))
    records.atomic_write_json(runner.path("metrics.json"), view.metrics)
    headline = status_line(view) + "\n\n" if status_line(view) else ""
    records.atomic_write_text(runner.path("summary.txt"), headline + render_table_text(task.summary(view.metrics)))
    for name, content in (task.files(view.metrics) if task.files is not None else {}).items():
        records.atomic_write_json(runner.path(name), content)


def study_context(task: Task, runner: Runner, view: RunView, shared: Any, key: jax.Array, name: str) -> Any:
    """The :class:`~jaxbench.studies.StudyContext` of study ``name``."""
    from jaxbench.studies import StudyContext

    def map_fn(fn, shared_, items, key_, *, unit=None, description=None):
        return runner.sweep(
            fn,
            shared_,
            items,
            key_,
            chunk_size=task.chunk_size,
            unit=None if unit is None else f"study.{unit}",
            description=description,
        )

    return StudyContext(
        name,
        task,
        view.data,
        view.params,
        view.items,
        view.outputs,
        shared,
        view.per_sample,
        view.features,
        stream_key(key, f"study/{name}"),
        runner.stages("study"),
        map_fn,
        runner.log,
        stream_key(key, "study"),
    )


def run_studies(task: Task, runner: Runner, view: RunView, shared: Any, key: jax.Array, names: Sequence[str]) -> None:
    """Runs each named study of ``task`` and saves it under ``studies/<name>/``."""
    import dataclasses

    from jaxbench.studies import save

    for name in names:
        start = time.perf_counter()
        result = task.studies[name].run(study_context(task, runner, view, shared, key, name))
        if result.study != name:
            result = dataclasses.replace(result, study=name)
        save(result, runner.path("studies", name))
        runner.timings[f"study.{name}"] = time.perf_counter() - start
        runner.log(f"[study] {name}: {len(result.rows)} rows, {runner.timings[f'study.{name}']:.1f} s")


def execute(
    task: Task,
    run_dir: str | Path,
    seed: int = 0,
    *,
    resume: bool = False,
    progress: bool = True,
    data: str | Path | None = None,
    log: Callable[[str], None] = print,
    studies: Sequence[str] = (),
    preset: str = "default",
    mesh: jax.sharding.Mesh | None = None,
) -> RunView:
    """Runs ``task`` in ``run_dir``, then the named ``studies``; writes the report.

    Config and data source are validated before the directory is touched; the directory is
    locked for the run (:mod:`jaxbench.rundir`). If a stage raises before any stage finished, a
    directory created by this call is removed; later, the manifest says ``error`` or
    ``interrupted`` and the directory is resumable. Each attempt's timings are kept.
    """
    from jaxbench.studies import resolve_names

    names = resolve_names(studies, tuple(task.studies), task.id)
    run_dir, data_path, seed = Path(run_dir), None if data is None else Path(data), rundir.check_seed(seed)
    if data_path is not None and not data_path.exists():
        raise ConfigError(f"--data {data_path}: no such file or directory; pass a file in the task's published format.")
    if task.validate is not None:
        task.validate(task.config, data_path)
    config_record = configs.to_dict(task.config)
    wanted = rundir.fingerprint(task.id, config_record, seed, data_path, task.data_files)
    lock, previous, created = rundir.open_run_dir(run_dir, wanted, resume, log)
    try:
        with progress_display.showing(progress):
            return _execute_locked(
                task, run_dir, seed, resume, progress, data_path, log, names, preset, mesh, wanted, previous, created
            )
    finally:
        lock.release()


def _execute_locked(
    task, run_dir, seed, resume, progress, data_path, log, names, preset, mesh, wanted, previous, created
) -> RunView:
    runner = Runner(run_dir, resume=resume, progress=progress, log=log, mesh=mesh)
    started, key = time.time(), rundir.root_key(seed)
    attempts = list((previous or {}).get("attempts", []))
    attempt = {"started_utc": rundir.utc_now(), "resumed": previous is not None, "status": "running"}
    manifest = {
        "task_id": task.id,
        "preset": preset,
        "config": wanted["config"],
        "seed": seed,
        "key": rundir.KEY_DERIVATION,
        "data": wanted["data"],
        "studies": list(names),
        "status": "running",
        "fingerprint": wanted,
        "environment": records.environment_record(task.packages),
        "attempts": [*attempts, attempt],
    }

    def finish(status: str, **extra: Any) -> None:
        attempt.update(status=status, wall_time_s=round(time.time() - started, 3), timings_s=dict(runner.timings))
        timings = {k: v for a in manifest["attempts"] for k, v in a.get("timings_s", {}).items()}
        manifest.update(status=status, timings_s=timings, **extra)
        records.atomic_write_json(run_dir / rundir.MANIFEST, manifest)

    records.atomic_write_json(run_dir / rundir.MANIFEST, manifest)
    try:
        view, shared = run_pipeline(task, runner, key, data_path)
        _write_results(task, runner, view)
        if view.status == "failed" and names:
            log(f"[study] skipped ({', '.join(names)}): the run failed ({view.note})")
        else:
            run_studies(task, runner, view, shared, key, names)
    except KeyboardInterrupt:
        finish("interrupted")
        raise
    except BaseException as error:
        if created and isinstance(error, JaxbenchError) and not any(runner.path("stages").glob("**/*.npz")):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping: leave nothing behind
        else:
            finish("error", error=f"{type(error).__name__}: {error}")
        raise
    finish(view.status, status_note=view.note, data_checksums=_data_checksums(view.data, wanted["data_sha256"]))
    with runner.spinner("writing report.html"):
        write_run_report(task, view, manifest)
    return view


def reload(task: Task, run_dir: str | Path, seed: int, data: str | None) -> RunView:
    """A finished run's results from its checkpoints, computing nothing (``jaxbench report``)."""
    runner = Runner(run_dir, progress=False, log=lambda s: None, load_only=True)
    return run_pipeline(task, runner, rundir.root_key(seed), None if data in (None, "generated") else Path(data))[0]


def write_run_report(task: Task, view: RunView, manifest: Mapping[str, Any]) -> Path:
    """``report.html``: the summary table, the task's sections, then a section per saved study."""
    from jaxbench.report import ReportSection, write_report
    from jaxbench.studies import study_sections

    headline = ReportSection("Scores", text=status_line(view), tables=(task.summary(view.metrics),))
    sections = [headline, *task.report(view), *study_sections(view.directory, task.studies)]
    return write_report(view.directory, f"jaxbench report: {task.id}", sections, manifest)
