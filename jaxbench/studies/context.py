"""What a study receives and what it is: a typed :class:`StudyContext` and a :class:`Study`.

A study is ``Study(info, run)`` with ``run(context) -> StudyResult``. The context holds the run's
results as the task's own types, the task's functions, a checkpointing ``stage`` and a sharded
``map`` that evaluates items exactly like the main sweep (chunked, every device, per-item keys
``fold_in(key, index)``). A study never imports its task's pipeline or the runner, and a task can
bring a study kind of its own (its :class:`StudyInfo` with a plot) without editing the core.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jax

    from jaxbench.studies.table import StudyResult
    from jaxbench.task import Stage, Task


@dataclasses.dataclass(frozen=True)
class StudyInfo:
    """A study kind: its name, title, the question it answers and how its result is drawn
    (``plot(result) -> [Figure]``)."""

    name: str
    title: str
    question: str
    plot: Callable[[StudyResult], list]


@dataclasses.dataclass(frozen=True)
class StudyContext:
    """A finished run as a study sees it.

    Attributes:
      task: the task (its ``config``, ``evaluate``, ``per_sample_metrics``, ``features``, ...).
      data, params, items, outputs, shared: the run's stages, as the task's types.
      per_sample: ``{metric: (N,) or (N, ...)}`` of the main sweep; ``features``: ``{feature: (N,)}``.
      key: this study's key stream (``study/<name>``).
      stage: ``stage(unit, fn)`` checkpoints a unit as ``stages/study.<unit>.npz`` (units may be
        shared between studies by name).
      map_fn: the runner's sharded sweep (use :meth:`map`).
      shared_key: one key for every study of the run (stream ``study``): the key of units that
        several studies share by name, so a shared unit does not depend on which study made it.
    """

    name: str
    task: Task
    data: Any
    params: Any
    items: Any
    outputs: Any
    shared: Any
    per_sample: Mapping[str, Any]
    features: Mapping[str, Any]
    key: jax.Array
    stage: Stage
    map_fn: Callable[..., Any]
    log: Callable[[str], None] = print
    shared_key: jax.Array | None = None

    @property
    def config(self) -> Any:
        """The task's resolved config."""
        return self.task.config

    def map(
        self,
        fn: Callable[[Any, Any, Any], Any],
        shared: Any,
        items: Any,
        key: jax.Array,
        *,
        unit: str | None = None,
        description: str | None = None,
    ) -> Any:
        """``fn(shared, items[chunk], keys[chunk])`` over every item, sharded and chunked like the
        main sweep, with ``keys[i] = fold_in(key, i)``; chunks are checkpointed when ``unit`` names
        them. Returns numpy outputs of the task's type."""
        return self.map_fn(fn, shared, items, key, unit=unit, description=description or self.name)

    def evaluate(self, items: Any, key: jax.Array, *, shared: Any = None, unit: str | None = None) -> Any:
        """The task's ``evaluate`` over ``items`` (with the run's ``shared`` unless given)."""
        return self.map(self.task.evaluate, self.shared if shared is None else shared, items, key, unit=unit)


@dataclasses.dataclass(frozen=True)
class Study:
    """A study kind and the function that runs it on a :class:`StudyContext`."""

    info: StudyInfo
    run: Callable[[StudyContext], StudyResult]
