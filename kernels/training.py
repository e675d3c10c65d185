"""The checkpointed host loop of every trainer: compiled chunks of steps, an orbax checkpoint after each, and a
resume that refuses checkpoints of another run.

A trainer supplies ``run_chunk(state, num_steps) -> (state, metrics)`` (one jitted ``lax.scan`` over steps, or
:func:`step_loop` over one jitted step; the metrics a tuple of arrays with the steps on their last axis, in the
order of the history's fields) and a history
NamedTuple of arrays filled with NaN. Batches must come from ``fold_in(batch_key, step)`` inside the chunk, so a
resumed or re-chunked run ends with exactly the parameters of an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.errors import ConfigError

History = TypeVar("History", bound=NamedTuple)


def empty_history(history_type: type[History], shape: tuple[int, ...]) -> History:
    """A history of NaN arrays of ``shape`` (steps last) for every field."""
    return history_type(*(np.full(shape, np.nan, dtype=np.float32) for _ in history_type._fields))


def step_loop(step: Callable[[Any], tuple[Any, tuple]], state: Any, num_steps: int) -> tuple[Any, tuple]:
    """``num_steps`` calls of a jitted ``step(state) -> (state, metrics)`` from Python, the metrics stacked on a last
    (steps) axis: a ``run_chunk`` for models that XLA:CPU runs slower inside a ``lax.scan`` loop body than as one
    program per step (convolutional networks: 5x in the nowcasting U-Net, measured in docs/performance.md)."""
    rows = []
    for _ in range(num_steps):
        state, metrics = step(state)
        rows.append(metrics)
    return state, tuple(jnp.stack(column, axis=-1) for column in zip(*rows))


def _as_json(meta: dict) -> Any:
    return json.loads(json.dumps(meta))


def checkpointed_loop(
    state: Any,
    history: History,
    run_chunk: Callable[[Any, int], tuple[Any, tuple]],
    steps: int,
    checkpoint_every: int,
    checkpoint_dir: str | Path | None,
    meta: dict,
    callback: Callable[[int, History], None] | None = None,
) -> tuple[Any, History]:
    """Runs chunks of ``checkpoint_every`` steps until ``steps``; with ``checkpoint_dir`` saves the state, the
    history and ``meta`` (JSON: config, settings, data hashes) after every chunk and resumes from the latest
    checkpoint there, refusing one whose ``meta`` differs (ConfigError naming the keys that differ).
    ``callback(done_steps, history)`` runs after every chunk."""
    manager = ocp = None
    if checkpoint_dir is not None:
        import orbax.checkpoint as ocp  # imported only when needed: it takes seconds

        manager = ocp.CheckpointManager(
            Path(checkpoint_dir).resolve(),
            options=ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False),
        )
    try:
        done = 0
        if manager is not None and manager.latest_step() is not None:
            latest = manager.latest_step()
            saved_meta = manager.restore(latest, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            wanted = _as_json(meta)
            if saved_meta != wanted:
                differ = sorted(k for k in set(saved_meta) | set(wanted) if saved_meta.get(k) != wanted.get(k))
                raise ConfigError(
                    f"{checkpoint_dir} holds checkpoints of a different run (differs in {differ}); "
                    "resume with the same data, indices, config and settings, or use a new directory."
                )
            restored = manager.restore(
                latest,
                args=ocp.args.Composite(state=ocp.args.StandardRestore({"state": state, "history": history._asdict()})),
            )["state"]
            # orbax returns committed arrays; the fresh state is uncommitted, and jit would
            # compile the chunk again for the committed ones. Host copies keep one program.
            state = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), restored["state"])
            history = type(history)(**{k: np.asarray(v) for k, v in restored["history"].items()})
            done = latest
        while done < steps:
            num_steps = min(checkpoint_every, steps - done)
            state, metrics = run_chunk(state, num_steps)
            history = type(history)(*(np.array(h) for h in history))
            for column, values in zip(history, metrics):
                column[..., done : done + num_steps] = np.asarray(values)
            done += num_steps
            if manager is not None:
                manager.save(
                    done,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave({"state": state, "history": history._asdict()}),
                        meta=ocp.args.JsonSave(meta),
                    ),
                )
                manager.wait_until_finished()
            if callback is not None:
                callback(done, history)
    finally:
        if manager is not None:
            manager.close()
    return state, history
