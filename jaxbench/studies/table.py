"""The long-form result of a study: one row per unit (slice x seed x metric), with support counts.

Every study returns a :class:`StudyResult`: its rows, a ``summary`` of numbers that answer the
study's question (a fitted trend, a trusted range, a best-minus-worst delta) and optional
``arrays`` kept for plots (scatter points, histograms). It is saved under
``studies/<name>/`` as ``table.csv`` (for pandas / spreadsheets), ``result.json`` (rows and
summary) and ``arrays.npz``, all written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxbench import records
from jaxbench.errors import DataFormatError

COLUMNS = ("study", "group", "slice", "x", "seed", "metric", "value", "error", "support")


class Row(NamedTuple):
    """One unit of a study.

    group: what the rows are split by (a feature, a lead time, a start), "" if nothing.
    slice: a readable label of the slice of data (e.g. ``n=200``, ``[0.0, 0.3)``, ``mu=1.0``).
    x: the slice's position on the study's axis (size, angle, distance, lead time...).
    seed: the training/evaluation seed (0 when there is one).
    metric, value: the metric's name and value. error: its standard error (NaN: not given).
    support: the number of samples behind the value.
    """

    group: str
    slice: str
    x: float
    seed: int
    metric: str
    value: float
    error: float = math.nan
    support: int = 0


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """A study's rows, its summary numbers and the arrays its plots need."""

    study: str
    rows: tuple[Row, ...]
    summary: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    arrays: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.metric for r in self.rows))

    def groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.group for r in self.rows))

    def select(self, metric: str | None = None, group: str | None = None) -> tuple[Row, ...]:
        return tuple(
            r for r in self.rows if (metric is None or r.metric == metric) and (group is None or r.group == group)
        )

    def column(self, name: str, metric: str | None = None, group: str | None = None) -> np.ndarray:
        """One column of the selected rows as a numpy array."""
        return np.asarray([getattr(r, name) for r in self.select(metric, group)])

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in self.rows:
            writer.writerow(
                [
                    self.study,
                    r.group,
                    r.slice,
                    repr(float(r.x)),
                    int(r.seed),
                    r.metric,
                    repr(float(r.value)),
                    repr(float(r.error)),
                    int(r.support),
                ]
            )
        return buffer.getvalue()


def make_rows(
    group: str,
    slice_: str,
    x: float,
    seed: int,
    values: Mapping[str, Any],
    support: int = 0,
    errors: Mapping[str, Any] | None = None,
) -> list[Row]:
    """One row per metric of ``values`` (a dict of scalars) for one slice."""
    errors = errors or {}
    return [
        Row(
            group,
            slice_,
            float(x),
            int(seed),
            name,
            float(np.asarray(v)),
            float(np.asarray(errors.get(name, math.nan))),
            int(support),
        )
        for name, v in values.items()
    ]


def save(result: StudyResult, directory: str | Path) -> Path:
    """Writes ``table.csv``, ``result.json`` and ``arrays.npz`` of a study atomically."""
    directory = Path(directory)
    records.atomic_write_text(directory / "table.csv", result.to_csv())
    document = {
        "study": result.study,
        "columns": list(COLUMNS[1:]),
        "rows": [list(r) for r in result.rows],
        "summary": result.summary,
    }
    records.atomic_write_json(directory / "result.json", document)
    records.save_pytree(directory / "arrays.npz", {k: np.asarray(v) for k, v in result.arrays.items()})
    return directory


def load(directory: str | Path) -> StudyResult:
    """Reads a study saved by :func:`save`."""
    directory = Path(directory)
    document = records.read_json(directory / "result.json")
    try:
        rows = tuple(
            Row(str(g), str(s), float(x), int(seed), str(m), _float(v), _float(e), int(n))
            for g, s, x, seed, m, v, e, n in document["rows"]
        )
        study = str(document["study"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataFormatError(f"{directory / 'result.json'} is not a study result ({error}).") from None
    arrays_file = directory / "arrays.npz"
    arrays = records.load_pytree(arrays_file) if arrays_file.exists() else {}
    return StudyResult(study, rows, document.get("summary", {}), arrays)


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def concat(study: str, parts: Iterable[StudyResult]) -> StudyResult:
    """Rows, summaries and arrays of several results as one (summaries and arrays keyed by part)."""
    parts = list(parts)
    rows = tuple(r for p in parts for r in p.rows)
    summary = {p.study: p.summary for p in parts}
    arrays = {f"{p.study}.{k}": v for p in parts for k, v in p.arrays.items()}
    return StudyResult(study, rows, summary, arrays)
