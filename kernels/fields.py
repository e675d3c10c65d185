"""Studies of forecast fields over lead time (nowcasting): reductions, their plots and study kinds.

Shapes: S samples, T lead times (frames), H x W pixels. Each analysis reduces per-sample fields or
metrics with the jitted kernels of :mod:`jaxbench.kernels.stats` and returns a
:class:`~jaxbench.studies.table.StudyResult`; each plot reads only that result (so ``jaxbench
report`` re-draws it from saved files); ``FIELD_STUDIES`` holds the study kinds a task adds to its
``Task.studies`` with its own ``run``. Computations, plots and kinds share one module: every plot
and kind belongs to exactly one analysis here, and matplotlib is imported only when a plot draws.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxbench.errors import ConfigError
from jaxbench.report import Figure, figure_png
from jaxbench.studies import plots
from jaxbench.studies.analyses import fit_summary as _fit_summary
from jaxbench.studies.analyses import scalars as _scalars
from jaxbench.studies.catalogue import line_plot
from jaxbench.studies.context import StudyInfo
from jaxbench.studies.table import Row, StudyResult, make_rows

from . import stats

MASK_MODES = ("observed", "predicted", "union", "intersection")


# -- time-frame slices ----------------------------------------------------------------------------
def frame_slices(per_sample: Mapping[str, ArrayLike], lead_times: Sequence[float]) -> StudyResult:
    """Mean, standard error and support of per-sample metrics (S, T) per lead time (NaNs skipped)."""
    rows: list[Row] = []
    summary = {}
    for metric, values in per_sample.items():
        values = jnp.asarray(values, jnp.float32)
        s, t = values.shape
        if t != len(lead_times):
            raise ValueError(f"frame_slices: '{metric}' has {t} frames for {len(lead_times)} lead times.")
        frame = jnp.broadcast_to(jnp.arange(t)[None, :], (s, t))
        valid = ~jnp.isnan(values)
        g = stats.group_stats(jnp.where(valid, values, 0.0).ravel(), jnp.where(valid, frame, -1).ravel(), t)
        for i, lead in enumerate(lead_times):
            rows.append(
                Row("", f"t={lead:g}", float(lead), 0, metric, float(g.mean[i]), float(g.sem[i]), int(g.count[i]))
            )
        summary[metric] = _fit_summary(np.asarray(lead_times, float), np.asarray(g.mean))
    return StudyResult("frame_slices", tuple(rows), {"trend_vs_lead_time": summary})


# -- differential trend ---------------------------------------------------------------------------
QUADRANTS = ("I", "II", "III", "IV", "on_axis", "not_finite")


def trend_quadrants(delta_true: ArrayLike, delta_pred: ArrayLike) -> dict[str, jax.Array]:
    """Counts over samples (axis 0) of the points (true change x, predicted change y) per quadrant.

    I: x > 0, y > 0 (both intensify); II: x < 0, y > 0; III: x < 0, y < 0; IV: x > 0, y < 0.
    A point with x = 0 or y = 0 (both finite) is in no quadrant and counts as ``on_axis``; one with
    a NaN/inf change counts as ``not_finite``; the six counts sum to the number of samples.
    """
    x, y = jnp.asarray(delta_true), jnp.asarray(delta_pred)
    finite = jnp.isfinite(x) & jnp.isfinite(y)
    right, left, up, down = finite & (x > 0), finite & (x < 0), y > 0, y < 0
    cells = {
        "I": right & up,
        "II": left & up,
        "III": left & down,
        "IV": right & down,
        "on_axis": finite & ((x == 0) | (y == 0)),
        "not_finite": ~finite,
    }
    return {name: jnp.sum(cells[name], axis=0) for name in QUADRANTS}


def differential_trend(
    prediction: ArrayLike, truth: ArrayLike, start: ArrayLike, lead_times: Sequence[float]
) -> StudyResult:
    """Slope, Pearson r and sign agreement of predicted vs true change mean(field_t) - mean(start).

    Shapes: prediction, truth (S, T, ...); start (S, ...) the last observed frame; trailing axes
    are averaged. Rows per lead time; ``summary['quadrants']`` counts the points (delta_true,
    delta_pred) per quadrant for each end time (see :func:`trend_quadrants`); ``arrays`` keeps
    delta_true, delta_pred (S, T).
    """
    prediction, truth, start = (jnp.asarray(a, jnp.float32) for a in (prediction, truth, start))
    axes = tuple(range(2, prediction.ndim))
    base = jnp.mean(start, axis=tuple(range(1, start.ndim))) if start.ndim > 1 else start
    d_pred = (jnp.mean(prediction, axis=axes) if axes else prediction) - base[:, None]
    d_true = (jnp.mean(truth, axis=axes) if axes else truth) - base[:, None]
    rows: list[Row] = []
    s = d_pred.shape[0]
    for i, lead in enumerate(lead_times):
        fit = stats.linear_fit(d_true[:, i], d_pred[:, i])
        agree = jnp.mean((jnp.sign(d_pred[:, i]) == jnp.sign(d_true[:, i])).astype(jnp.float32))
        values = {"slope": fit.slope, "pearson": stats.pearson(d_true[:, i], d_pred[:, i]), "sign_agreement": agree}
        rows += make_rows(
            "",
            f"t={lead:g}",
            lead,
            0,
            _scalars(values, "differential_trend"),
            support=s,
            errors={"slope": fit.slope_err},
        )
    quadrants = {k: np.asarray(v).tolist() for k, v in trend_quadrants(d_true, d_pred).items()}
    by_end_time = {f"t={lead:g}": {k: int(quadrants[k][i]) for k in QUADRANTS} for i, lead in enumerate(lead_times)}
    return StudyResult(
        "differential_trend",
        tuple(rows),
        {"quadrants": by_end_time},
        {
            "delta_true": np.asarray(d_true),
            "delta_pred": np.asarray(d_pred),
            "lead_times": np.asarray(lead_times, float),
        },
    )


# -- centre-of-mass displacement ------------------------------------------------------------------
def center_of_mass(
    prediction: ArrayLike, truth: ArrayLike, lead_times: Sequence[float], pixel_size: float = 1.0
) -> StudyResult:
    """Displacement (dy, dx, r; ``pixel_size`` units) of the predicted from the true intensity centroid.

    r = sqrt(dy^2 + dx^2) is the Euclidean distance between the centroids (the method's delta_r).
    Shapes: fields (S, T, H, W); ``arrays`` keeps dy, dx, r (S, T). Rows per lead time: mean dy,
    dx, r and median r over samples where both centroids exist (support).
    """
    c_pred = stats.centroid(jnp.asarray(prediction, jnp.float32))
    c_true = stats.centroid(jnp.asarray(truth, jnp.float32))
    d = np.asarray((c_pred - c_true) * pixel_size)
    dy, dx = d[..., 0], d[..., 1]
    r = np.hypot(dy, dx)
    rows: list[Row] = []
    for i, lead in enumerate(lead_times):
        ok = np.isfinite(r[:, i])
        n = int(ok.sum())
        if n == 0:
            continue
        values = {
            "dy_mean": dy[ok, i].mean(),
            "dx_mean": dx[ok, i].mean(),
            "r_mean": r[ok, i].mean(),
            "r_median": np.median(r[ok, i]),
        }
        rows += make_rows(
            "", f"t={lead:g}", lead, 0, values, support=n, errors={"r_mean": r[ok, i].std() / math.sqrt(n)}
        )
    return StudyResult(
        "center_of_mass",
        tuple(rows),
        {"pixel_size": pixel_size},
        {"dy": dy, "dx": dx, "r": r, "lead_times": np.asarray(lead_times, float)},
    )


# -- active-area scoping --------------------------------------------------------------------------
def active_mask(prediction: jax.Array, truth: jax.Array, threshold: float, mode: str) -> jax.Array:
    """Pixels where the observed / predicted field (or their union / intersection) is >= threshold."""
    o, p = truth >= threshold, prediction >= threshold
    masks = {"observed": lambda: o, "predicted": lambda: p, "union": lambda: o | p, "intersection": lambda: o & p}
    if mode not in masks:
        raise ConfigError(f"active_area: mode must be one of {MASK_MODES}, got {mode!r}.")
    return masks[mode]()


class ActiveAreaErrors(NamedTuple):
    """Sums of the error prediction - truth over each frame's active pixels; every field is (S, T).

    Field units (e.g. mm/h) for the error sums; ``pixels`` counts the active pixels of the frame.
    """

    pixels: jax.Array
    abs_error_sum: jax.Array
    squared_error_sum: jax.Array
    error_sum: jax.Array

    @property
    def mae(self) -> jax.Array:
        """Active-area MAE of each frame (S, T); NaN for a frame without an active pixel."""
        return jnp.where(self.pixels > 0, self.abs_error_sum / jnp.maximum(self.pixels, 1), jnp.nan)


@functools.partial(jax.jit, static_argnames="mode")
def active_area_errors(prediction: ArrayLike, truth: ArrayLike, threshold: float, mode: str) -> ActiveAreaErrors:
    """Per-frame error sums over the active mask of (S, T, H, W) fields (see :func:`active_mask`)."""
    prediction, truth = jnp.asarray(prediction, jnp.float32), jnp.asarray(truth, jnp.float32)
    mask = active_mask(prediction, truth, threshold, mode)
    err = jnp.where(mask, prediction - truth, 0.0)
    pixel_axes = (-2, -1)
    return ActiveAreaErrors(
        jnp.sum(mask, axis=pixel_axes),
        jnp.sum(jnp.abs(err), axis=pixel_axes),
        jnp.sum(err**2, axis=pixel_axes),
        jnp.sum(err, axis=pixel_axes),
    )


def active_area(
    prediction: ArrayLike, truth: ArrayLike, lead_times: Sequence[float], threshold: float, mode: str = "union"
) -> StudyResult:
    """Active-area MAE per event and pooled, RMSE, bias and pixel count of (S, T, H, W) fields per lead time.

    ``active_mae_per_event`` is the method's active-area MAE: the MAE over each frame's active
    pixels, then the mean over the events (samples) at that lead time, each event weighing the
    same (error: standard error over events; support: the frames averaged). A frame without an
    active pixel has no active-area MAE: it is left out of that mean and counted in
    ``empty_frames`` (support: all S frames). ``active_mae_pooled`` (and ``active_rmse_pooled``,
    ``active_bias_pooled``) pool every active pixel of every event instead, so an event weighs
    as many active pixels as it has (support: ``active_pixels``); the two coincide when every
    event has the same active area or the same MAE. A lead time with no active pixel at all
    gives only its ``empty_frames`` row. ``arrays`` keeps the per-frame ``active_mae`` (S, T;
    NaN where empty) and ``active_pixels`` (S, T).
    """
    e = active_area_errors(prediction, truth, threshold, mode)
    pixels = np.asarray(e.pixels, np.int64)
    abs_sum, sq_sum, err_sum = (np.asarray(a, np.float64) for a in (e.abs_error_sum, e.squared_error_sum, e.error_sum))
    per_frame = np.asarray(e.mae, np.float64)
    s = pixels.shape[0]
    rows: list[Row] = []
    empty_frames = []
    for i, lead in enumerate(lead_times):
        active = pixels[:, i] > 0
        n_frames, n_pixels = int(active.sum()), int(pixels[:, i].sum())
        empty_frames.append(s - n_frames)
        label = f"t={lead:g}"
        if n_frames:
            maes = per_frame[active, i]
            sem = {"active_mae_per_event": maes.std(ddof=1) / math.sqrt(n_frames) if n_frames > 1 else math.nan}
            rows += make_rows(mode, label, lead, 0, {"active_mae_per_event": maes.mean()}, n_frames, sem)
            pooled = {
                "active_mae_pooled": abs_sum[:, i].sum() / n_pixels,
                "active_rmse_pooled": math.sqrt(sq_sum[:, i].sum() / n_pixels),
                "active_bias_pooled": err_sum[:, i].sum() / n_pixels,
                "active_pixels": n_pixels,
            }
            rows += make_rows(mode, label, lead, 0, _scalars(pooled, "active_area"), support=n_pixels)
        rows += make_rows(mode, label, lead, 0, {"empty_frames": s - n_frames}, support=s)
    return StudyResult(
        "active_area",
        tuple(rows),
        {"threshold": threshold, "mode": mode, "frames_per_lead_time": s, "empty_frames": empty_frames},
        {"active_mae": per_frame, "active_pixels": pixels, "lead_times": np.asarray(lead_times, float)},
    )


# -- cumulative metrics ---------------------------------------------------------------------------
def per_sample_csi(forecast: ArrayLike, observed: ArrayLike, threshold: float) -> tuple[jax.Array, jax.Array]:
    """CSI (S, T) of (S, T, H, W) fields, and the samples (S,) with hits + misses + false alarms > 0
    in every frame."""
    c = stats.contingency(jnp.asarray(forecast), jnp.asarray(observed), threshold, axes=(-2, -1))
    return c.csi, jnp.all(~jnp.isnan(c.csi), axis=1)


CUCSI_BINS = 30
CUCSI_STEP = 0.015


def cumulative_metric(
    per_sample: ArrayLike,
    lead_times: Sequence[float],
    edges: Sequence[float],
    select: ArrayLike | None = None,
    metric: str = "metric",
) -> StudyResult:
    """Distribution of a per-sample metric (S, T) per lead time over the ``select``-ed (S,) samples.

    Bins are half-open, [edges[j], edges[j+1]), the last one too. Rows per lead time (group) and
    bin: the fraction of the selected samples in the bin (support: count). Values outside the grid
    are counted, never dropped: per lead time the rows ``<metric>_fraction_below_grid`` (<
    edges[0]) and ``<metric>_fraction_beyond_grid`` (>= edges[-1]), and ``summary`` keeps their
    counts and the NaNs (``missing``), so each lead time's fractions, below, beyond and missing sum
    to 1. ``arrays['histogram']`` is (T, bins) counts; ``summary['cumulative_mean']`` the mean over
    the selected samples (NaNs skipped) per lead time, grid or not.
    """
    values = jnp.asarray(per_sample, jnp.float32)
    s, t = values.shape
    grid = np.asarray(edges, np.float64)
    if grid.ndim != 1 or grid.size < 2 or not np.all(np.diff(grid) > 0):
        raise ConfigError(f"cumulative_metric: edges must be at least 2 increasing values, got {grid.tolist()}.")
    keep = jnp.ones((s,), bool) if select is None else jnp.asarray(select, bool)
    # An open bin on each side (-inf, edges[0]) and [edges[-1], inf] turns the grid's last bin
    # half-open and keeps every out-of-grid value countable.
    padded = jnp.asarray(np.concatenate([[-np.inf], grid, [np.inf]]), jnp.float32)
    frame = jnp.broadcast_to(jnp.arange(t, dtype=jnp.float32)[None, :], (s, t))
    masked = jnp.where(keep[:, None], values, jnp.nan)
    counts = np.asarray(stats.histogram2d(frame.ravel(), masked.ravel(), jnp.arange(t + 1, dtype=jnp.float32), padded))
    counts = np.rint(counts).astype(np.int64)
    below, hist, beyond = counts[:, 0], counts[:, 1:-1], counts[:, -1]
    n_kept = int(jnp.sum(keep))
    missing = n_kept - counts.sum(axis=1)
    denom = max(n_kept, 1)
    # (slice, x, metric suffix, column of counts): below, the grid's bins, beyond.
    cells = [(f"< {grid[0]:g}", grid[0], "_fraction_below_grid", 0)]
    cells += [
        (f"[{lo:g}, {hi:g})", (lo + hi) / 2, "_fraction", b + 1) for b, (lo, hi) in enumerate(zip(grid, grid[1:]))
    ]
    cells += [(f">= {grid[-1]:g}", grid[-1], "_fraction_beyond_grid", grid.size)]
    rows = [
        Row(
            f"t={lead:g}",
            label,
            float(x),
            0,
            metric + suffix,
            float(counts[i, col] / denom),
            support=int(counts[i, col]),
        )
        for i, lead in enumerate(lead_times)
        for label, x, suffix, col in cells
    ]
    means = np.nanmean(np.asarray(masked), axis=0) if n_kept else np.full(t, np.nan)
    summary = {
        "metric": metric,
        "selected_samples": n_kept,
        "cumulative_mean": means.tolist(),
        "below_grid": below.tolist(),
        "beyond_grid": beyond.tolist(),
        "missing": missing.tolist(),
        "below_grid_fraction": (below / denom).tolist(),
        "beyond_grid_fraction": (beyond / denom).tolist(),
    }
    arrays = {
        "histogram": hist,
        "below_grid": below,
        "beyond_grid": beyond,
        "edges": grid,
        "lead_times": np.asarray(lead_times, float),
    }
    return StudyResult("cumulative", tuple(rows), summary, arrays)


def cumulative_csi(
    forecast: ArrayLike,
    observed: ArrayLike,
    lead_times: Sequence[float],
    threshold: float,
    n_bins: int = CUCSI_BINS,
    step: float = CUCSI_STEP,
) -> StudyResult:
    """Cumulative CSI (CuCSI_T) of (S, T, H, W) fields: per lead time, the CSI histogram of the subset X_T.

    X_T keeps the events whose every frame has hits + misses + false alarms > 0 at ``threshold``;
    bins are [step * j, step * (j + 1)) for j < ``n_bins`` (the method's N = 30, s = 0.015 by
    default, so the grid ends at CSI 0.45). A row's value is the bin's count over |X_T|, and CSI
    values beyond the grid are counted in ``csi_fraction_beyond_grid`` (see
    :func:`cumulative_metric`); ``summary`` adds the threshold, N, s and the number of events.
    """
    if n_bins < 1 or not step > 0:
        raise ConfigError(f"cumulative_csi: needs n_bins >= 1 and step > 0, got n_bins={n_bins}, step={step}.")
    csi, keep = per_sample_csi(forecast, observed, threshold)
    result = cumulative_metric(csi, lead_times, step * np.arange(n_bins + 1), select=keep, metric="csi")
    summary = {**result.summary, "threshold": threshold, "n_bins": n_bins, "step": step, "samples": int(csi.shape[0])}
    return dataclasses.replace(result, summary=summary)


# -- plots ----------------------------------------------------------------------------------------
def histogram_per_lead(result: StudyResult, name: str, caption: str, key: str = "histogram") -> Figure:
    """A 2-D histogram: lead time (x) vs metric bins (y), colour = fraction of samples."""
    hist = np.asarray(result.arrays[key], float)
    edges = np.asarray(result.arrays["edges"], float)
    leads = np.asarray(result.arrays["lead_times"], float)
    fig, (ax,) = plots._figure(1, width=5.5, height=3.6)
    total = max(result.summary.get("selected_samples", hist.sum(axis=1).max()), 1)  # out-of-grid samples count too
    mesh = ax.pcolormesh(np.arange(len(leads) + 1) - 0.5, edges, (hist / total).T, cmap="viridis")
    ax.set_xticks(range(len(leads)), [f"{t:g}" for t in leads], fontsize=7)
    ax.set_xlabel("lead time")
    ax.set_ylabel(result.summary.get("metric", "metric"))
    outside = sum(result.summary.get("below_grid", [])) + sum(result.summary.get("beyond_grid", []))
    if outside:
        ax.set_title(f"{outside} sample-frames outside [{edges[0]:g}, {edges[-1]:g}) not drawn", fontsize=8)
    fig.colorbar(mesh, ax=ax, label="fraction of samples")
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


def displacement_hist(result: StudyResult, name: str, caption: str) -> Figure:
    """Box plots of the centroid displacement r (``pixel_size`` units) per lead time."""
    r = np.asarray(result.arrays["r"], float)
    leads = np.asarray(result.arrays["lead_times"], float)
    fig, (ax,) = plots._figure(1, width=5.5)
    data = [r[np.isfinite(r[:, i]), i] for i in range(r.shape[1])]
    ax.boxplot(data, positions=range(len(leads)))
    ax.set_xticks(range(len(leads)), [f"{t:g}" for t in leads], fontsize=7)
    ax.set_xlabel("lead time")
    ax.set_ylabel(f"centroid displacement r ({result.summary.get('pixel_size', 1)} units/pixel)")
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


def trend_scatter(result: StudyResult, name: str, caption: str) -> Figure:
    """Predicted vs true change per lead time (at most ``plots.MAX_PANELS`` panels), with the diagonal."""
    dt, dp = np.asarray(result.arrays["delta_true"]), np.asarray(result.arrays["delta_pred"])
    leads = np.asarray(result.arrays["lead_times"], float)
    show = np.unique(np.linspace(0, len(leads) - 1, min(len(leads), plots.MAX_PANELS)).astype(int))
    fig, axes = plots._figure(len(show))
    for ax, i in zip(axes, show):
        ax.scatter(dt[:, i], dp[:, i], s=4, alpha=0.5)
        lim = np.nanmax(np.abs(np.concatenate([dt[:, i], dp[:, i]]))) or 1.0
        ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8)
        ax.set_title(f"lead {leads[i]:g}", fontsize=9)
        ax.set_xlabel("true change")
        ax.set_ylabel("predicted change")
    fig.tight_layout()
    return Figure(name, caption, figure_png(fig))


# -- study kinds ----------------------------------------------------------------------------------
FRAME_SLICES = StudyInfo(
    "frame_slices",
    "Time-frame slices",
    "How does the metric change with lead time?",
    line_plot("lead time", "Metric per lead time (mean +- standard error)."),
)
DIFFERENTIAL_TREND = StudyInfo(
    "differential_trend",
    "Differential trend",
    "Does the model predict the direction and size of change from the last observed frame?",
    lambda r: [
        trend_scatter(r, "study_differential_trend", "Predicted vs true change from the start frame."),
        plots.metric_vs_x(
            r, "study_differential_trend_lines", "Slope, Pearson r and sign agreement per lead time.", "lead time"
        ),
    ],
)
CENTER_OF_MASS = StudyInfo(
    "center_of_mass",
    "Centre-of-mass displacement",
    "How far is the predicted intensity centroid from the observed one?",
    lambda r: [displacement_hist(r, "study_center_of_mass", "Centroid displacement per lead time.")],
)
ACTIVE_AREA = StudyInfo(
    "active_area",
    "Active-area scoping",
    "How good is the model where something happens (above a threshold)?",
    line_plot("lead time", "Metrics inside the active mask per lead time."),
)
CUMULATIVE = StudyInfo(
    "cumulative",
    "Cumulative metrics",
    "How is a per-sample metric distributed across the test set at each lead time?",
    lambda r: [histogram_per_lead(r, "study_cumulative", "Distribution of the per-sample metric per lead time.")],
)

FIELD_STUDIES: dict[str, StudyInfo] = {
    info.name: info for info in (FRAME_SLICES, DIFFERENTIAL_TREND, CENTER_OF_MASS, ACTIVE_AREA, CUMULATIVE)
}
