"""Structural interpretation: studies that map a model's trusted operating range and trace its errors.

A study is a pure function (:mod:`jaxbench.studies.analyses`) that returns a long-form
:class:`StudyResult` (one row per slice x seed x metric, with support counts), a plot function
(:mod:`jaxbench.studies.plots`) and an entry in :data:`CATALOGUE`. A task declares the studies
it supports as ``Task.studies = {name: adapter}``, where ``adapter(run) -> StudyResult`` feeds
the generic study with the task's data, model and metrics, and checkpoints its expensive units
through ``run.stage``. Then::

    jaxbench run fair_universe-v0 --quick --study all        # or --study feature_ood
    jaxbench info fair_universe-v0                            # lists the supported studies

writes ``studies/<name>/{table.csv,result.json,arrays.npz}`` and a report section per study.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from jaxbench.errors import ConfigError
from jaxbench.studies import analyses, plots
from jaxbench.studies.table import COLUMNS, Row, StudyResult, concat, load, make_rows, save

__all__ = ["CATALOGUE", "COLUMNS", "Row", "StudyInfo", "StudyResult", "analyses", "concat", "load", "make_rows",
           "plots", "resolve_names", "run_studies", "save", "study_sections"]


@dataclasses.dataclass(frozen=True)
class StudyInfo:
    """A study's name, title, the question it answers and how its result is drawn."""

    name: str
    title: str
    question: str
    plot: Callable[[StudyResult], list]


def _line(xlabel: str, caption: str, logx: bool = False):
    return lambda r: [plots.metric_vs_x(r, f"study_{r.study}", caption, xlabel, logx=logx)]


CATALOGUE: dict[str, StudyInfo] = {
    info.name: info
    for info in (
        StudyInfo("sample_efficiency", "Sample efficiency",
                  "How does the metric improve with training-set size, and what does the fitted trend promise?",
                  _line("training-set size", "Metric vs training-set size (mean +- std over seeds).", logx=True)),
        StudyInfo("time_window_grid", "Time-domain extrapolation",
                  "Which training windows of an ordered axis generalise to its final window?",
                  lambda r: [plots.window_grid(r, "study_time_window_grid", "Training windows sorted by the test metric."),
                             plots.metric_vs_x(r, "study_time_window_grid_lines", "Test metric vs window width, "
                                               "one line per start.", "window width (fraction)")]),
        StudyInfo("frame_slices", "Time-frame slices", "How does the metric change with lead time?",
                  _line("lead time", "Metric per lead time (mean +- standard error).")),
        StudyInfo("differential_trend", "Differential trend",
                  "Does the model predict the direction and size of change from the last observed frame?",
                  lambda r: [plots.trend_scatter(r, "study_differential_trend", "Predicted vs true change from the "
                                                 "start frame."),
                             plots.metric_vs_x(r, "study_differential_trend_lines", "Slope, Pearson r and sign "
                                               "agreement per lead time.", "lead time")]),
        StudyInfo("rotation_scan", "Rotational invariance",
                  "Does the metric stay flat when the test set is rotated?",
                  _line("rotation angle", "Metric vs rotation angle of the test set.")),
        StudyInfo("equivariance", "Equivariance test",
                  "Do outputs transform as they must under rotations, translations and permutations?",
                  _line("trial", "Errors per random transformation (one line per kind).")),
        StudyInfo("center_of_mass", "Centre-of-mass displacement",
                  "How far is the predicted intensity centroid from the observed one?",
                  lambda r: [plots.displacement_hist(r, "study_center_of_mass", "Centroid displacement per lead time.")]),
        StudyInfo("active_area", "Active-area scoping",
                  "How good is the model where something happens (above a threshold)?",
                  _line("lead time", "Metrics inside the active mask per lead time.")),
        StudyInfo("cumulative", "Cumulative metrics",
                  "How is a per-sample metric distributed across the test set at each lead time?",
                  lambda r: [plots.histogram_per_lead(r, "study_cumulative", "Distribution of the per-sample metric "
                                                      "per lead time.")]),
        StudyInfo("feature_ood", "Feature out-of-distribution test",
                  "Where, in distance from the training range of a feature, does the model stop being trustworthy?",
                  _line("distance from the training range", "Metric vs distance from the training range, one line "
                        "per feature.")),
        StudyInfo("similarity", "Training-test similarity",
                  "Does a descriptor similarity between a training set and the test set predict the test error?",
                  lambda r: [plots.metric_vs_x(r, "study_similarity", "Test metric of each training set vs its "
                                               "similarity to the test set.", "similarity to the test set",
                                               scatter=True)]),
        StudyInfo("breakdown", "Per-sample breakdown",
                  "Which groups of samples carry the error?",
                  lambda r: [plots.metric_vs_x(r.__class__(r.study, r.select(group=g)), f"study_breakdown_{i}",
                                               f"Per-sample metrics grouped by {g} (mean +- standard error).", g)
                             for i, g in enumerate(r.groups())]),
        StudyInfo("correlation", "Metric correlation",
                  "Which data features does the per-sample error follow?",
                  lambda r: [plots.correlation_scatter(r, "study_correlation", "Strongest metric-feature pairs "
                                                       "(Spearman), with least-squares lines.")]),
        StudyInfo("stability", "Prediction stability",
                  "How much do predictions move when only the random key changes?",
                  lambda r: [plots.spread_hist(r, "study_stability", "Per-sample spread over keys; outliers circled.")]),
    )
}


def resolve_names(requested: Sequence[str], supported: Sequence[str], task_id: str) -> list[str]:
    """``--study`` values (names, comma lists or 'all') as the task's study names, in catalogue order."""
    names: list[str] = []
    for item in requested:
        for name in (n.strip() for n in item.split(",") if n.strip()):
            if name == "all":
                names.extend(supported)
            elif name not in supported:
                import difflib

                near = difflib.get_close_matches(name, list(supported) + list(CATALOGUE), n=1)
                hint = f" Did you mean '{near[0]}'?" if near else ""
                known = ", ".join(supported) or "none"
                raise ConfigError(f"--study {name}: {task_id} does not support it.{hint} Supported: {known}, or 'all'.")
            else:
                names.append(name)
    order = list(CATALOGUE)
    return sorted(dict.fromkeys(names), key=order.index)


def run_studies(task, run, names: Sequence[str]) -> dict[str, StudyResult]:
    """Runs ``task.studies[name](run)`` for each name and saves it under ``studies/<name>/``."""
    import time

    results = {}
    for name in names:
        start = time.perf_counter()
        result = task.studies[name](run)
        if result.study != name:
            result = dataclasses.replace(result, study=name)
        save(result, run.path("studies", name))
        run.timings[f"study.{name}"] = time.perf_counter() - start
        run.log(f"[study] {name}: {len(result.rows)} rows, {run.timings[f'study.{name}']:.1f} s")
        results[name] = result
    return results


def study_sections(run_dir: str | Path) -> list:
    """Report sections of every study saved in ``run_dir/studies`` (catalogue order)."""
    from jaxbench.report import ReportSection

    root = Path(run_dir) / "studies"
    sections = []
    for name in CATALOGUE:
        if not (root / name / "result.json").exists():
            continue
        result = load(root / name)
        info = CATALOGUE[name]
        tables = [summary_table(result)]
        text = (f"{info.question}\n\nFull table: studies/{name}/table.csv ({len(result.rows)} rows: "
                f"{', '.join(COLUMNS)}).")
        sections.append(ReportSection(f"Study: {info.title}", text=text, tables=tuple(t for t in tables if t),
                                      figures=tuple(info.plot(result))))
    return sections


def summary_table(result: StudyResult, max_rows: int = 40):
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
