"""Structural interpretation: studies that map a model's trusted operating range and trace its errors.

A study is a :class:`Study` (``info`` + ``run(context) -> StudyResult``); the analyses are pure
functions (:mod:`jaxbench.studies.analyses`) that return long-form :class:`StudyResult` tables.
A task lists its studies as ``Task.studies = {name: Study}``: generic ones
(:mod:`jaxbench.studies.generic`: breakdown, correlation, stability) come for free from its
``per_sample_metrics``, ``features`` and ``evaluate``; its own feed an analysis through the
:class:`StudyContext`. Then::

    jaxbench run fair_universe-v0 --preset quick --study all     # or --study feature_ood
    jaxbench info fair_universe-v0                                # lists the supported studies

writes ``studies/<name>/{table.csv,result.json,arrays.npz}`` and a report section per study.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxbench.errors import ConfigError
from jaxbench.studies import analyses, plots
from jaxbench.studies.catalogue import CATALOGUE
from jaxbench.studies.context import Study, StudyContext, StudyInfo
from jaxbench.studies.table import COLUMNS, Row, StudyResult, concat, load, make_rows, save

__all__ = [
    "CATALOGUE",
    "COLUMNS",
    "Row",
    "Study",
    "StudyContext",
    "StudyInfo",
    "StudyResult",
    "analyses",
    "concat",
    "load",
    "make_rows",
    "plots",
    "resolve_names",
    "save",
    "study_sections",
]


def resolve_names(requested: Sequence[str], supported: Sequence[str], task_id: str) -> list[str]:
    """``--study`` values (names, comma lists or 'all') as the task's study names, in its order."""
    names: list[str] = []
    for item in requested:
        for name in (n.strip() for n in item.split(",") if n.strip()):
            if name == "all":
                names.extend(supported)
            elif name not in supported:
                near = difflib.get_close_matches(name, list(supported) + list(CATALOGUE), n=1)
                hint = f" Did you mean '{near[0]}'?" if near else ""
                known = ", ".join(supported) or "none"
                raise ConfigError(f"--study {name}: {task_id} does not support it.{hint} Supported: {known}, or 'all'.")
            else:
                names.append(name)
    return sorted(dict.fromkeys(names), key=list(supported).index)


def study_sections(run_dir: str | Path, studies: Mapping[str, Study]) -> list:
    """Report sections of every study of ``studies`` saved in ``run_dir/studies``."""
    from jaxbench.report import ReportSection

    root = Path(run_dir) / "studies"
    sections = []
    for name, study in studies.items():
        if not (root / name / "result.json").exists():
            continue
        result = load(root / name)
        table = summary_table(result)
        text = (
            f"{study.info.question}\n\nFull table: studies/{name}/table.csv ({len(result.rows)} rows: "
            f"{', '.join(COLUMNS)})."
        )
        sections.append(
            ReportSection(
                f"Study: {study.info.title}",
                text=text,
                tables=(table,) if table else (),
                figures=tuple(study.info.plot(result)),
            )
        )
    return sections


def summary_table(result: StudyResult, max_rows: int = 40) -> Any:
    """The summary's numbers as a two-column table (nested keys joined by '.')."""
    from jaxbench.report import Table

    flat: list[tuple[str, str]] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value and isinstance(value[0], (list, dict)):
            for i, v in enumerate(value[:10]):
                walk(f"{prefix}[{i}]", v)
        else:
            flat.append((prefix, _short(value)))

    walk("", dict(result.summary))
    if not flat:
        return None
    return Table(f"{result.study}: summary", ("quantity", "value"), tuple(flat[:max_rows]))


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        text = ", ".join(_short(v) for v in value[:8])
        return f"[{text}{', ...' if len(value) > 8 else ''}]"
    return str(value)
