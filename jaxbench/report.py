"""Run reports: a self-contained ``report.html`` (sections, tables, embedded plots) and run comparison.

A task describes its report as :class:`ReportSection` values; :func:`write_report` renders them,
then a "Reproducibility" section from the run's manifest (task, config, seed, versions, devices,
checksums, timings). Every file is written atomically with :mod:`jaxbench.records`.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxbench import records
from jaxbench.errors import DataFormatError

MISSING = "—"

# Figure names become file names plots/<name>.png.
_FIGURE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclasses.dataclass(frozen=True)
class Table:
    """A captioned table; cells are str, int, float (shown to 4 significant digits) or None (—)."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]

    def __post_init__(self):
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table '{self.caption}': row {row!r} has {len(row)} cells for {len(self.columns)} columns."
                )


@dataclasses.dataclass(frozen=True)
class Figure:
    """A plot: written to ``plots/<name>.png`` and embedded in the report."""

    name: str
    caption: str
    png: bytes


@dataclasses.dataclass(frozen=True)
class ReportSection:
    """One report section: paragraphs (separated by blank lines), then tables, then figures."""

    title: str
    text: str = ""
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()


def _scalar(value: Any) -> Any:
    """numpy/jax 0-d values as Python scalars; everything else unchanged."""
    if hasattr(value, "item") and np.ndim(value) == 0:
        return value.item()
    return value


def _is_number(value: Any) -> bool:
    value = _scalar(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_cell(value: Any) -> str:
    """A table cell as text: floats to 4 significant digits, None as '—'."""
    value = _scalar(value)
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _numeric_columns(table: Table) -> list[bool]:
    """Columns whose present cells are all numbers (right-aligned)."""
    numeric = []
    for j in range(len(table.columns)):
        cells = [row[j] for row in table.rows if _scalar(row[j]) is not None]
        numeric.append(bool(cells) and all(_is_number(cell) for cell in cells))
    return numeric


def render_table_text(table: Table) -> str:
    """The table as aligned plain text (caption, header, rule, rows) for a terminal."""
    cells = [list(table.columns)] + [[format_cell(cell) for cell in row] for row in table.rows]
    widths = [max(len(row[j]) for row in cells) for j in range(len(table.columns))]
    numeric = _numeric_columns(table)

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([table.caption, line(cells[0]), rule, *(line(row) for row in cells[1:])])


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes, rendered with Agg; the figure is closed afterwards."""
    import matplotlib.pyplot as plt  # only to release figures that pyplot manages

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", backend="agg")
    finally:
        plt.close(fig)
    return buffer.getvalue()


# -- HTML --------------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .2rem; margin-top: 2.2rem; }
nav ol { padding-left: 1.2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .92rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f1f1f1; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td pre { margin: 0; font-size: .85rem; white-space: pre-wrap; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9rem; color: #555; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table_html(table: Table) -> str:
    numeric = _numeric_columns(table)
    head = "".join(f"<th>{_e(column)}</th>" for column in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for cell, num in zip(row, numeric):
            text = _e(format_cell(cell))
            if "\n" in text:
                text = f"<pre>{text}</pre>"
            cells.append(f'<td class="num">{text}</td>' if num else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<table><caption>{_e(table.caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _figure_html(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(figure.caption)}">'
        f"<figcaption>{_e(figure.caption)}</figcaption></figure>"
    )


def _section_html(index: int, section: ReportSection) -> str:
    paragraphs = [p.strip() for p in section.text.split("\n\n") if p.strip()]
    parts = [f'<section id="s{index}"><h2>{_e(section.title)}</h2>']
    parts += [f"<p>{_e(p)}</p>" for p in paragraphs]
    parts += [_table_html(table) for table in section.tables]
    parts += [_figure_html(figure) for figure in section.figures]
    parts.append("</section>")
    return "\n".join(parts)


def _exact(value: Any) -> str | None:
    """A recorded value shown exactly (config values must not be rounded): strings as is, else JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, indent=1, sort_keys=True) if isinstance(value, (dict, list)) else json.dumps(value)


def reproducibility_section(manifest: Mapping[str, Any]) -> ReportSection:
    """The manifest as tables: run, environment, config, packages, data checksums, timings."""
    manifest = dict(manifest)
    environment = dict(manifest.pop("environment", None) or {})
    config = manifest.pop("config", None) or {}
    checksums = manifest.pop("data_checksums", None) or {}
    timings = manifest.pop("timings_s", None) or {}
    packages = environment.pop("packages", None) or {}
    devices = environment.pop("devices", None)

    commit = environment.pop("git_commit", None)
    dirty = environment.pop("git_dirty", None)
    if commit is not None and dirty:
        commit = f"{commit} (uncommitted changes)"
    device_text = None
    if devices:
        device_text = (
            f"{devices.get('count')} × {devices.get('device_kind')} ({devices.get('platform')}), "
            f"{devices.get('process_count')} process(es)"
        )

    run_rows = [
        ("Task id", manifest.pop("task_id", None)),
        ("Seed", _exact(manifest.pop("seed", None))),
        ("Key", manifest.pop("key", None)),
        ("Data", manifest.pop("data", None)),
        ("Status", manifest.pop("status", None)),
        ("Wall time (s)", manifest.pop("wall_time_s", None)),
    ]
    run_rows += [(name, _exact(value)) for name, value in sorted(manifest.items())]
    env_rows = [
        ("jaxbench version", environment.pop("jaxbench_version", None)),
        ("Git commit", commit),
        ("Devices", device_text),
        ("Python", environment.pop("python", None)),
        ("Platform", environment.pop("platform", None)),
        ("Host", environment.pop("hostname", None)),
        ("Recorded (UTC)", environment.pop("timestamp_utc", None)),
    ]
    env_rows += [(name, _exact(value)) for name, value in sorted(environment.items())]

    tables = [
        Table("Run", ("field", "value"), tuple(run_rows)),
        Table("Environment", ("field", "value"), tuple(env_rows)),
        Table("Configuration", ("key", "value"), tuple((k, _exact(v)) for k, v in sorted(config.items()))),
        Table("Package versions", ("package", "version"), tuple(sorted(packages.items()))),
    ]
    if checksums:
        tables.append(Table("Data checksums (SHA-256)", ("data", "sha256"), tuple(sorted(checksums.items()))))
    if timings:
        tables.append(Table("Timings", ("stage", "seconds"), tuple(timings.items())))
    text = "Everything needed to re-run this benchmark and get the same numbers, from manifest.json."
    return ReportSection("Reproducibility", text=text, tables=tuple(tables))


def write_report(
    run_dir: str | Path, title: str, sections: Sequence[ReportSection], manifest: Mapping[str, Any]
) -> Path:
    """Writes ``plots/<name>.png`` for every figure and a self-contained ``report.html``; returns its path.

    The HTML holds the sections in order, then a "Reproducibility" section from ``manifest``;
    images are embedded as base64 data URIs and all text is HTML-escaped.
    """
    run_dir = Path(run_dir)
    sections = [*sections, reproducibility_section(manifest)]
    names = set()
    for figure in (figure for section in sections for figure in section.figures):
        if not _FIGURE_NAME.fullmatch(figure.name):
            raise ValueError(f"figure name {figure.name!r} is not a portable file name (letters, digits, '_.-').")
        if figure.name in names:
            raise ValueError(f"two figures are named {figure.name!r}; plots/{figure.name}.png would be overwritten.")
        names.add(figure.name)
        records.atomic_write_bytes(run_dir / "plots" / f"{figure.name}.png", figure.png)

    contents = "".join(f'<li><a href="#s{i}">{_e(s.title)}</a></li>' for i, s in enumerate(sections))
    document = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_e(title)}</h1>",
            f"<nav><ol>{contents}</ol></nav>",
            *(_section_html(i, section) for i, section in enumerate(sections)),
            "</body></html>",
        ]
    )
    path = run_dir / "report.html"
    records.atomic_write_text(path, document + "\n")
    return path


# -- comparison --------------------------------------------------------------------------------
def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts as one flat dict with '.'-joined names, in their original order."""
    flat = {}
    for name, value in metrics.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, f"{key}."))
        else:
            flat[key] = value
    return flat


def compare_table(run_dirs: Sequence[str | Path]) -> Table:
    """The metrics of several runs side by side: one row per metric, one column per run.

    Columns are headed ``<run dir name> (<task id>)``; a metric a run lacks (or recorded as
    null, e.g. a failed fit) shows as '—'.
    """
    headers, runs = [], []
    for run_dir in map(Path, run_dirs):
        manifest = records.read_json(run_dir / "manifest.json")
        metrics = records.read_json(run_dir / "metrics.json")
        if not isinstance(metrics, dict):
            raise DataFormatError(f"{run_dir / 'metrics.json'} should hold an object of metric name -> value.")
        task_id = manifest.get("task_id", "?") if isinstance(manifest, dict) else "?"
        headers.append(f"{run_dir.name} ({task_id})")
        runs.append(flatten_metrics(metrics))
    names = list(dict.fromkeys(name for metrics in runs for name in metrics))
    rows = tuple((name, *(metrics.get(name) for metrics in runs)) for name in names)
    return Table(f"Metrics of {len(runs)} runs", ("metric", *headers), rows)
