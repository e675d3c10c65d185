"""The Task: a benchmark as data plus pure functions that the runner calls, field by field.

A :class:`Task` owns no mutable state. The runner (:mod:`jaxbench.runner`) owns the run
directory, the named key streams, checkpoints and sharding, and calls the fields in this order::

    validate(config, path)                                     # before anything is written
    data     = generate(key["data"], config)            or load(path, key["data"], config)
    check_data(data, config)                                   # before fit
    params   = fit(key["fit"], data, config, stage)
    items    = conditions(key["conditions"], data, config)     # leading axis N
    shared   = prepare(params, data, config)                   # replicated on the mesh
    outputs  = evaluate(shared, items[chunk], keys[chunk])     # sharded, chunked, resumable
    per_sample = per_sample_metrics(outputs, items)            # {name: (N,) or (N, ...)}
    metrics  = score(per_sample, outputs, items, key["score"])
    summary(metrics), files(metrics), report(view), studies[name].run(context)

Each field is typed by a ``Protocol`` whose docstring is its contract, so a new task can be
written from this file alone (see ``docs/adding_a_task.md`` and ``tasks/oscillator``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    import jax

    from jaxbench.report import ReportSection, Table

Array = Any  # a jax or numpy array
PyTree = Any
Config = TypeVar("Config")
Data = TypeVar("Data")
T = TypeVar("T")


class Stage(Protocol):
    """Checkpointed units inside ``fit`` (and studies); the runner provides it."""

    def __call__(self, name: str, fn: Callable[[], T]) -> T:
        """``fn()`` once: its pytree of arrays (dicts, lists, NamedTuples) is saved under ``name``
        and, on ``--resume``, loaded instead of recomputed."""

    def directory(self, name: str) -> Path:
        """A directory of the run for a unit with its own checkpoints (an orbax-trained model)."""

    def progress(self, description: str, total: int) -> AbstractContextManager[Callable[..., None]]:
        """A progress bar as a context manager: ``with stage.progress("training", n) as advance:``,
        then ``advance()`` once per finished step (keyword ``info=`` for a note such as the loss)."""


class Generate(Protocol):
    def __call__(self, key: jax.Array, config: Any) -> Any:
        """The embedded simulator: a data set from ``key`` (the ``data`` stream).

        Returns the task's ``Data`` pytree (NamedTuples of arrays), the same type ``load`` returns,
        so every stage and study runs on either source. Same key, same data.
        """


class Load(Protocol):
    def __call__(self, path: Path, key: jax.Array, config: Any) -> Any:
        """A file (or folder) in the task's published format as ``Data``; ``key`` for keyed splits.

        Raises ``DataFormatError`` naming the file, the field and the fix on bad input.
        """


class Save(Protocol):
    def __call__(self, path: Path, data: Any, config: Any) -> Path:
        """Writes ``data`` in the published format at ``path``; returns what ``load`` should read.

        ``load(save(path, data), key) == data`` for the key that made ``data`` (``check_task``).
        """


class Validate(Protocol):
    def __call__(self, config: Any, path: Path | None) -> None:
        """Checks the config against the data source before any stage runs or anything is written.

        ``path`` is the ``--data`` path or None for generated data. Raises ``ConfigError`` (or
        ``DataFormatError``) in one line naming the key and the fix: a split that needs files, a
        missing file, settings that cannot work together.
        """


class CheckData(Protocol):
    def __call__(self, data: Any, config: Any) -> None:
        """Checks loaded or generated data against the config before ``fit``: a training set smaller
        than a batch, an empty file, too few frames. Raises like ``Validate``."""


class Fit(Protocol):
    def __call__(self, key: jax.Array, data: Any, config: Any, stage: Stage) -> Any:
        """The reference model's parameters (``Params``), trained on the training part of ``data``.

        Expensive units go through ``stage`` so a resumed run loads them; the runner calls ``fit``
        again on resume, which must then only load.
        """


class Conditions(Protocol):
    def __call__(self, key: jax.Array, data: Any, config: Any) -> Any:
        """The evaluation items: a pytree whose leaves share a leading axis ``N`` (pseudo-experiments,
        test frames, jets, nowcast events). Data-side knobs live here, not in ``Params``."""


class Prepare(Protocol):
    def __call__(self, params: Any, data: Any, config: Any) -> Any:
        """``Shared``: everything ``evaluate`` reads besides the items, built once and replicated on
        every device (event pools, templates, model parameters as arrays)."""


class Evaluate(Protocol):
    def __call__(self, shared: Any, items: Any, keys: jax.Array) -> Any:
        """Outputs for a batch of items (jit-compatible, items independent).

        Args:
          shared: from ``prepare``.
          items: a slice of ``conditions`` with leading axis ``B``.
          keys: ``(B,)`` typed keys, ``fold_in(evaluate_key, global_index)``: results do not depend
            on the chunk size or the device count.
        Returns: a pytree of arrays with leading axis ``B``.
        """


class PerSampleMetrics(Protocol):
    def __call__(self, outputs: Any, items: Any) -> dict[str, Array]:
        """Values per item: ``{name: (N,) or (N, ...) array}`` (units in the name; trailing axes such as lead
        times are the task's); aggregation is ``score``."""


class Score(Protocol):
    def __call__(self, per_sample: Mapping[str, Array], outputs: Any, items: Any, key: jax.Array) -> dict[str, Any]:
        """The named aggregation: JSON-able metrics (``metrics.json``); ``key`` for bootstraps."""


class Features(Protocol):
    def __call__(self, items: Any, data: Any) -> dict[str, Array]:
        """Per-item descriptors ``{name: (N,)}`` that generic breakdowns and correlations use."""


class Summary(Protocol):
    def __call__(self, metrics: Mapping[str, Any]) -> Table:
        """The headline table (``summary.txt``, the first report section)."""


class Files(Protocol):
    def __call__(self, metrics: Mapping[str, Any]) -> Mapping[str, Any]:
        """Task files written beside ``metrics.json``: ``{file name: JSON-able object}``."""


class Report(Protocol):
    def __call__(self, view: RunView) -> Sequence[ReportSection]:
        """Plots and tables of a finished run, from the typed in-memory results in ``view``."""


@dataclasses.dataclass(frozen=True)
class RunView:
    """What a finished run holds, as the task's own types (reports and studies read it).

    ``source`` is ``"generated"`` or the path of the data file; ``directory`` the run directory;
    ``status`` and ``note`` say whether the results are finite (reports lead with them).
    """

    config: Any
    source: str
    data: Any
    params: Any
    items: Any
    outputs: Any
    per_sample: Mapping[str, Array]
    features: Mapping[str, Array]
    metrics: Mapping[str, Any]
    directory: Path
    status: str = "complete"  # or "degraded" / "failed" (see runner.run_status)
    note: str = ""  # why, when not complete


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
class Task(Generic[Config]):
    """A benchmark bundle: a data set, objective criteria and a reference implementation.

    Every callable field is called by the runner; their contracts are the Protocols above.
    ``chunk_size`` is the number of items per checkpointed sweep chunk; ``data_files(path)`` the
    files ``load`` reads (their sha256 goes into the manifest; default: ``path`` if a file).
    ``packages``: the distributions the task imports, whose versions the manifest records.
    ``partial``: whether items with non-finite per-sample metrics make the run ``degraded`` (the
    others still count) rather than ``failed``; non-finite headline metrics always fail it.
    ``undefined_metrics``: fnmatch patterns of per-sample metrics whose NaN means "not defined for
    this item" (a CSI where neither field has rain), never a failure.
    ``format_atol``: how far ``load(save(data))`` may be from ``data`` because the published format
    quantises values (NowcastNet's PNGs store rain to 0.1 mm/h: 0.05); 0 for lossless formats.
    """

    id: str
    config: Config
    datacard: Mapping[str, Any]
    criteria: tuple[Criterion, ...]
    generate: Generate
    load: Load
    save: Save
    fit: Fit
    conditions: Conditions
    prepare: Prepare
    evaluate: Evaluate
    per_sample_metrics: PerSampleMetrics
    score: Score
    features: Features
    summary: Summary
    report: Report
    studies: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # {name: jaxbench.studies.Study}
    files: Files | None = None
    chunk_size: int = 64
    data_files: Callable[[Path], Sequence[Path]] | None = None
    validate: Validate | None = None
    check_data: CheckData | None = None
    packages: tuple[str, ...] = ()
    partial: bool = False
    undefined_metrics: tuple[str, ...] = ()
    format_atol: float = 0.0

    def replace(self, **changes: Any) -> Task:
        """A copy with ``changes`` (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)
