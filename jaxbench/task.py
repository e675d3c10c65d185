"""The Task protocol: a benchmark is data plus pure functions plus objective criteria.

A :class:`Task` owns no mutable state. Everything random takes a ``jax.random`` key first; the
data-side conditions of a study (signal strength, nuisances, window, angle, sample size) are a
pytree separate from the model's ``params``, so a sweep is a ``vmap`` axis over conditions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

Config = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One objective criterion: a named metric, which way is better, and the stated target."""

    metric: str
    higher_is_better: bool
    target: float | None = None
    description: str = ""

    def met(self, value: float) -> bool | None:
        """Whether ``value`` reaches the target (None when the criterion states no target)."""
        if self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target


@dataclasses.dataclass(frozen=True)
class Task:
    """A benchmark bundle: a data set, objective criteria and a reference implementation.

    Attributes:
      id: registry id ``name-vN``.
      config: the resolved configuration (defaults, preset, then user overrides).
      datacard: what the data are: source, units, sizes, provenance, level of theory.
      criteria: the objective criteria the benchmark is scored by.
      generate: ``generate(key, config) -> dataset``: the embedded simulator.
      load: ``load(path, key, config) -> dataset``: reader of the real published format; it returns
        the same structure as ``generate`` so every study runs on either source.
      init: ``init(key, dataset, config) -> params``: the reference model's parameters.
      apply: ``apply(params, batch, key) -> prediction``: the jit-compatible reference model.
      per_sample_metrics: ``per_sample_metrics(prediction, batch) -> dict[str, Array]``: one
        value per sample; aggregation is a separate named step.
      pipeline: ``pipeline(run) -> dict``: the end-to-end benchmark (train, sweep, score) written
        against a :class:`jaxbench.runner.Run`, which makes every stage resumable.
      report_sections: ``report_sections(run_dir) -> list[ReportSection]``: plots and tables.
      studies: the structural-interpretation studies this task supports: ``{name: adapter}``
        with ``adapter(run) -> StudyResult`` (names from :data:`jaxbench.studies.CATALOGUE`).
    """

    id: str
    config: Config
    datacard: Mapping[str, Any]
    criteria: tuple[Criterion, ...]
    generate: Callable[..., Any]
    load: Callable[..., Any]
    init: Callable[..., Any]
    apply: Callable[..., Any]
    per_sample_metrics: Callable[..., Mapping[str, Any]]
    pipeline: Callable[..., Mapping[str, Any]]
    report_sections: Callable[..., list]
    studies: Mapping[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)

    def replace(self, **changes: Any) -> "Task":
        return dataclasses.replace(self, **changes)
