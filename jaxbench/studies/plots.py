"""Plots of study results (matplotlib, Agg): each returns ``jaxbench.report.Figure`` values.

Every plot reads only a :class:`~jaxbench.studies.table.StudyResult`, so ``jaxbench report``
re-draws a study from its saved files.
"""

from __future__ import annotations

import math

import numpy as np

from jaxbench.report import Figure, figure_png
from jaxbench.studies.table import StudyResult

MAX_PANELS = 6


def _figure(n_panels: int, width: float = 4.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n_panels, 3)
    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes.ravel()


UNIT_SUFFIXES = (("_mev_per_atom", " (meV/atom)"), ("_mev_per_a", " (meV/Å)"), ("_mev", " (meV)"), ("_gev", " (GeV)"))


def axis_label(metric: str) -> str:
    """A metric name as an axis label, its unit suffix (``_mev_per_a``, ...) written as a unit."""
    for suffix, unit in UNIT_SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)].replace("_", " ") + unit
    return metric.replace("_", " ")


def metric_vs_x(
    result: StudyResult,
    name: str,
    caption: str,
    xlabel: str,
    *,
    logx: bool = False,
    metrics: tuple[str, ...] | None = None,
    scatter: bool = False,
) -> Figure:
    """One panel per metric: value vs x, one line per group, mean +- spread over seeds (or the
    rows' standard errors); ``scatter`` draws points without lines (units are not ordered)."""
    metrics = (metrics or result.metrics())[:MAX_PANELS]
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        for group in result.groups():
            rows = result.select(metric, group)
            if not rows:
                continue
            xs = sorted({r.x for r in rows})
            by_x = [[r for r in rows if r.x == x] for x in xs]
            mean = np.array([np.mean([r.value for r in rs]) for rs in by_x])
            spread = np.array([np.std([r.value for r in rs], ddof=1) if len(rs) > 1 else rs[0].error for rs in by_x])
            spread = np.where(np.isfinite(spread), spread, 0.0)
            ax.errorbar(
                xs,
                mean,
                yerr=spread,
                marker="o",
                ms=3,
                capsize=2,
                label=group or None,
                linestyle="none" if scatter else "-",
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(axis_label(metric), fontsize=8)
        ax.set_title(metric, fontsize=9)
        if logx:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        if len(result.groups()) > 1:
            ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.08), ncol=3, frameon=False)
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


def window_grid(result: StudyResult, name: str, caption: str) -> Figure:
    """Training windows sorted by the ranking metric: a horizontal bar per window."""
    metric = result.summary.get("ranked_by") or result.metrics()[0]
    ranking = result.summary.get("ranking") or [[r.slice, r.value] for r in result.select(metric)]
    fig, (ax,) = _figure(1, width=6.0, height=0.3 * len(ranking) + 1.2)
    labels = [str(label) for label, _ in ranking]
    ax.barh(range(len(ranking)), [v for _, v in ranking], color="tab:blue")
    ax.set_yticks(range(len(ranking)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.set_title("training window (fraction of the ordered axis)", fontsize=9)
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


def correlation_scatter(result: StudyResult, name: str, caption: str, max_panels: int = MAX_PANELS) -> Figure:
    """Scatter of the strongest (Spearman) metric-feature pairs with their least-squares line."""
    pairs = [g for g, _ in result.summary.get("strongest_spearman", [])][:max_panels]
    fig, axes = _figure(max(len(pairs), 1))
    for ax, pair in zip(axes, pairs):
        metric, feature = pair.split("~", 1)
        x = np.asarray(result.arrays.get(f"feature.{feature}", []), float)
        y = np.asarray(result.arrays.get(f"metric.{metric}", []), float)
        ax.scatter(x, y, s=3, alpha=0.4)
        fit = {r.metric: r.value for r in result.select(group=pair)}
        if x.size:
            grid = np.linspace(np.nanmin(x), np.nanmax(x), 10)
            ax.plot(grid, fit.get("intercept", 0.0) + fit.get("slope", 0.0) * grid, color="tab:red")
        ax.set_xlabel(feature)
        ax.set_ylabel(metric)
        ax.set_title(
            f"Pearson {fit.get('pearson', math.nan):.2f}, Spearman {fit.get('spearman', math.nan):.2f}", fontsize=9
        )
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


def spread_hist(result: StudyResult, name: str, caption: str) -> Figure:
    """Per-sample spread over keys of each metric; outliers marked."""
    metrics = [k[: -len(".spread")] for k in result.arrays if k.endswith(".spread")][:MAX_PANELS]
    fig, axes = _figure(max(len(metrics), 1))
    for ax, metric in zip(axes, metrics):
        spread = np.asarray(result.arrays[f"{metric}.spread"], float)
        ax.plot(np.arange(spread.size), spread, ".", ms=3)
        out = result.summary.get("outliers", {}).get(metric, [])
        if out:
            ax.plot(out, spread[out], "o", mfc="none", color="tab:red", label="outlier")
            ax.legend(fontsize=7)
        ax.set_xlabel("sample")
        ax.set_ylabel("std over keys")
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


def trusted_ranges(result: StudyResult, name: str, caption: str, xlabel: str) -> Figure | None:
    """Per (feature, metric) with a trusted range: points with errors, target, fitted trend, each
    side's limit with its interval (shaded) and the measured range (green band)."""
    panels = [
        (feature, metric, entry)
        for feature, block in result.summary.items()
        if isinstance(block, dict)
        for metric, entry in block.get("trusted_range", {}).items()
    ][:MAX_PANELS]
    if not panels:
        return None
    fig, axes = _figure(len(panels))
    for ax, (feature, metric, entry) in zip(axes, panels):
        points = entry.get("points", [])
        d = np.array([p["distance"] for p in points], float)
        v = np.array([p["value"] for p in points], float)
        e = np.array([np.nan if p["error"] is None else p["error"] for p in points], float)
        ax.errorbar(d, v, yerr=np.where(np.isfinite(e), e, 0.0), fmt="o", ms=3, capsize=2, color="black", zorder=3)
        ax.axhline(entry["target"], color="tab:red", lw=1, ls="--")
        if entry.get("measured"):
            ax.axvspan(*entry["measured"], color="tab:green", alpha=0.12, lw=0)
        for side, sign in (("lower", -1.0), ("upper", 1.0)):
            fit = entry["fitted"].get(side, {})
            coefficients = fit.get("coefficients")
            if coefficients and entry.get("trend") != "monotone":
                reach = abs(fit["reach"])
                grid = np.linspace(0.0, max(reach, abs(fit["limit"] or 0.0)), 50)
                ax.plot(sign * grid, np.polynomial.polynomial.polyval(grid, coefficients), color="tab:blue", lw=1)
            lo, hi = fit.get("interval", [None, None])
            if fit.get("limit") is not None:
                ax.axvline(fit["limit"], color="tab:blue", lw=1)
            if lo is not None and hi is not None:
                ax.axvspan(lo, hi, color="tab:blue", alpha=0.15, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.set_title(f"{feature}: {metric}, {int(100 * entry.get('cl', 0.68))}% interval of each limit", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


def region_map(entry: dict, name: str, caption: str, labels: tuple[str, str]) -> Figure:
    """A 2-D trusted map: the metric per grid cell, bad cells hatched, the trusted region outlined."""
    a, b = np.asarray(entry["distance_a"]), np.asarray(entry["distance_b"])
    value, verdict = np.asarray(entry["value"], float), np.asarray(entry["verdict"])
    fig, (ax,) = _figure(1, width=5.0, height=4.2)
    mesh = ax.pcolormesh(b, a, value, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="metric")
    bad = np.argwhere(verdict == 0)
    ax.plot(b[bad[:, 1]], a[bad[:, 0]], "x", color="tab:red", ms=6, label="significantly bad")
    trusted = np.asarray(entry["trusted"], float)
    if trusted.any() and not trusted.all():
        ax.contour(b, a, trusted, levels=[0.5], colors="white", linewidths=1.5)
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[0])
    ax.set_title(f"target {entry['target']:g}; trusted cells {100 * entry['trusted_fraction']:.0f}%", fontsize=9)
    if bad.size:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.15))
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


def importance_bars(result: StudyResult, name: str, caption: str) -> Figure:
    """Permutation importance: one horizontal bar per input feature, with its standard error."""
    rows = sorted(result.select("degradation"), key=lambda r: r.value)
    fig, (ax,) = _figure(1, width=5.5, height=0.25 * len(rows) + 1.2)
    ax.barh(range(len(rows)), [r.value for r in rows], xerr=[r.error or 0.0 for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), [r.slice for r in rows], fontsize=7)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel("metric increase when the feature is shuffled")
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))
