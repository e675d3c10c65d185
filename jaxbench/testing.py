"""Conformance checks every registered task must pass: ``check_task(id, preset="tiny")``.

Like jumanji's environment checks, this is public code: a new task runs it in its tests (and
``tests/test_conformance.py`` runs it over every registered task). It checks the contracts of
:mod:`jaxbench.task` through the runner's own machinery:

* generate → fit → conditions → prepare → evaluate, with ``evaluate`` traced once over chunks of
  one size (``chex.assert_max_traces``);
* finite outputs; per-sample metrics of shape ``(N, ...)``; features of shape ``(N,)``;
* the same key gives the same numbers; two chunk sizes and 1 vs all devices give the same results;
* ``load`` of a file that ``save`` wrote in the published format equals what was written;
* score, summary and report run on the results.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import chex
import jax
import numpy as np

from jaxbench import registry
from jaxbench.errors import JaxbenchError
from jaxbench.runner import Runner, check_per_sample, run_status, stream_key
from jaxbench.sharding import batch_mesh
from jaxbench.task import RunView


class ConformanceError(JaxbenchError, AssertionError):
    """A task that breaks a contract of :mod:`jaxbench.task`."""


def _fail(task_id: str, message: str) -> None:
    raise ConformanceError(f"{task_id}: {message}")


def _assert_close(task_id: str, what: str, a, b, rtol: float, atol: float) -> None:
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            diff = np.max(np.abs(x.astype(float) - y.astype(float))) if x.shape == y.shape else "shape"
            _fail(task_id, f"{what}: leaf {jax.tree_util.keystr(path)} differs (max |diff| {diff}).")


def check_task(
    task_id: str,
    preset: str = "tiny",
    *,
    seed: int = 0,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    workdir: str | Path | None = None,
) -> RunView:
    """Runs the conformance checks on ``task_id`` built from ``preset``; returns the run's view.

    Raises :class:`ConformanceError` naming the broken contract.
    """
    task = registry.make(task_id, preset)
    with tempfile.TemporaryDirectory() if workdir is None else _keep(workdir) as tmp:
        tmp = Path(tmp)
        key = jax.random.key(seed)
        quiet = {"progress": False, "log": lambda s: None}
        runner = Runner(tmp / "run", **quiet)
        config = task.config
        if task.validate is not None:
            task.validate(config, None)  # the tiny preset runs on generated data
        data = task.generate(stream_key(key, "data"), config)
        if task.check_data is not None:
            task.check_data(data, config)
        again = task.generate(stream_key(key, "data"), config)
        _assert_close(task_id, "generate twice with one key", data, again, 0.0, 0.0)

        written = task.save(tmp / "published", data, config)
        loaded = task.load(Path(written), stream_key(key, "data"), config)
        if jax.tree.structure(loaded) != jax.tree.structure(data):
            _fail(
                task_id,
                f"load(save(data)) has structure {jax.tree.structure(loaded)}, generate gives "
                f"{jax.tree.structure(data)}.",
            )
        _assert_close(task_id, "load(save(data))", loaded, data, rtol, atol + task.format_atol)

        params = task.fit(stream_key(key, "fit"), data, config, runner.stages("fit"))
        items = task.conditions(stream_key(key, "conditions"), data, config)
        n = int(jax.tree.leaves(items)[0].shape[0])
        chunk = runner.mesh.size  # chunks are multiples of the device count
        if n <= chunk:
            _fail(
                task_id,
                f"the {preset} preset has {n} items; use more than {chunk} (the device count) so chunking is checked.",
            )
        shared = task.prepare(params, data, config)
        eval_key = stream_key(key, "evaluate")

        traced = chex.assert_max_traces(task.evaluate, n=1)
        outputs = runner.sweep(traced, shared, items, eval_key, chunk_size=chunk)  # two chunks, one trace
        for path, leaf in jax.tree_util.tree_flatten_with_path(outputs)[0]:
            leaf = np.asarray(leaf)
            if leaf.shape[:1] != (n,):
                _fail(
                    task_id,
                    f"evaluate output {jax.tree_util.keystr(path)} has shape {leaf.shape}; its leading "
                    f"axis must be {n}.",
                )
            if leaf.dtype.kind in "fc" and not np.all(np.isfinite(leaf)):
                _fail(task_id, f"evaluate output {jax.tree_util.keystr(path)} is not finite.")

        same = runner.sweep(task.evaluate, shared, items, eval_key, chunk_size=chunk)
        _assert_close(task_id, "the same key twice", same, outputs, 0.0, 0.0)
        whole = runner.sweep(task.evaluate, shared, items, eval_key, chunk_size=n)
        _assert_close(task_id, "one chunk vs two chunks", whole, outputs, rtol, atol)
        one_device = Runner(tmp / "run1", mesh=batch_mesh(jax.devices()[:1]), **quiet)
        single = one_device.sweep(task.evaluate, shared, items, eval_key, chunk_size=chunk)
        _assert_close(task_id, f"1 vs {len(jax.devices())} devices", single, outputs, rtol, atol)

        per_sample = check_per_sample(task.per_sample_metrics(outputs, items), n, task_id)
        features = task.features(items, data)
        for name, value in features.items():
            if np.asarray(value).shape != (n,):
                _fail(task_id, f"features['{name}'] has shape {np.asarray(value).shape}; must be ({n},).")
        metrics = task.score(per_sample, outputs, items, stream_key(key, "score"))
        status, note = run_status(per_sample, metrics, task.partial, task.undefined_metrics)
        if status != "complete":
            _fail(task_id, f"the {preset} preset's run is {status}: {note}.")
        for criterion in task.criteria:
            if _lookup(metrics, criterion.metric) is None:
                _fail(task_id, f"criterion '{criterion.metric}' is not in the metrics score returns.")
        task.summary(metrics)
        view = RunView(
            config,
            "generated",
            data,
            params,
            items,
            outputs,
            per_sample,
            {k: np.asarray(v) for k, v in features.items()},
            metrics,
            tmp / "run",
        )
        task.report(view)
        return view


def _lookup(metrics, dotted: str):
    node = metrics
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


class _keep:
    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def __exit__(self, *exc):
        return False
