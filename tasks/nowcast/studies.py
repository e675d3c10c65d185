"""The nowcasting studies of the structural-interpretation method (its section 6): time-frame slices, cumulative CSI,
raw against active-area MAE, centre-of-mass displacement, differential trend, prediction stability over noise keys,
metric correlations, the model against every pysteps baseline, and the motion field against the true one.

The field reductions are the core's (:mod:`jaxbench.kernels.fields`); this module picks the fields and lead times of
a run and adds the plots the method draws. Lead times are minutes; "hours" select the target frames at 60, 120, 180
minutes (those the data have).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels import fields, stats, verification
from jaxbench.studies import StudyResult, analyses, make_rows
from jaxbench.studies.catalogue import CORRELATION, line_plot
from jaxbench.studies.context import Study, StudyContext, StudyInfo

from . import model, plots
from .forecaster import MODEL, true_motion

#: Per-sample metrics of the model that the frame slices follow.
SLICED = ("csi_{t}", "ncsi_{t}", "mae", "active_mae_union", "com_r")


def lead_times(ctx: StudyContext) -> np.ndarray:
    """Every target frame's lead time (minutes)."""
    return np.asarray(ctx.config.data.lead_times_min, float)


def hour_frames(ctx: StudyContext, hours: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Indices and lead times (min) of the target frames at ``hours`` that the data have (error if none)."""
    leads = lead_times(ctx)
    picked = [int(np.argmin(np.abs(leads - 60 * h))) for h in hours if np.min(np.abs(leads - 60 * h)) < 1e-6]
    if not picked:
        raise ValueError(f"{ctx.name}: no target frame at {hours} h; the lead times are {leads.tolist()} min.")
    return np.asarray(picked), leads[picked]


def observed(ctx: StudyContext) -> np.ndarray:
    """The target frames (E, n_targets, H, W) mm/h."""
    return np.asarray(ctx.items.events.frames)[:, ctx.config.data.n_inputs :]


def last_input(ctx: StudyContext) -> np.ndarray:
    """The last observed frame (E, H, W) mm/h (lead time 0)."""
    return np.asarray(ctx.items.events.frames)[:, ctx.config.data.n_inputs - 1]


def _with_summary(result: StudyResult, **extra) -> StudyResult:
    return dataclasses.replace(result, summary={**result.summary, **extra})


# -- time-frame slices ---------------------------------------------------------------------------------------------
def _frame_slices(ctx: StudyContext) -> StudyResult:
    """The model's per-event metrics at 1, 2 and 3 h (mean +- standard error over events; CSI where defined)."""
    idx, leads = hour_frames(ctx, ctx.config.studies.frame_hours)
    names = [s.format(t=f"{t:g}") for s in SLICED for t in ctx.config.metrics.thresholds_mmh]
    chosen = {n: np.asarray(ctx.per_sample[n])[:, idx] for n in dict.fromkeys(names) if n in ctx.per_sample}
    return _with_summary(fields.frame_slices(chosen, leads.tolist()), hours=list(ctx.config.studies.frame_hours))


# -- cumulative CSI ------------------------------------------------------------------------------------------------
def _cumulative_csi(ctx: StudyContext) -> StudyResult:
    """CuCSI_T for every threshold T: per lead time, the CSI histogram (N bins of step s) of the events whose
    contingency is non-empty at T in every lead (the task's CSI: its operator and NaN policy)."""
    s = ctx.config.studies
    edges = s.cucsi_step * np.arange(s.cucsi_bins + 1)
    rows, summary, arrays = [], {"n_bins": s.cucsi_bins, "step": s.cucsi_step, "thresholds": {}}, {}
    for t in ctx.config.metrics.thresholds_mmh:
        csi = np.asarray(ctx.per_sample[f"csi_{t:g}"], float)
        keep = np.all(np.isfinite(csi), axis=1)
        r = fields.cumulative_metric(csi, lead_times(ctx).tolist(), edges, select=keep, metric=f"csi_{t:g}")
        rows += r.rows
        summary["thresholds"][f"{t:g}"] = {**r.summary, "events": int(csi.shape[0])}
        arrays |= {f"{k}.{t:g}": v for k, v in r.arrays.items()}
    return StudyResult("cumulative_csi", tuple(rows), summary, arrays)


# -- raw vs active-area MAE ----------------------------------------------------------------------------------------
def _active_area(ctx: StudyContext) -> StudyResult:
    """Active-area MAE (union of observed and predicted >= the active threshold) per lead time, beside the raw MAE,
    with the per-event distributions of both at 1, 2, 3 h (the method's table 2 and figure 17)."""
    threshold = ctx.config.metrics.active_threshold_mmh
    result = fields.active_area(np.asarray(ctx.outputs["frames"]), observed(ctx), lead_times(ctx).tolist(), threshold)
    raw = np.asarray(ctx.per_sample["mae"], float)
    rows = list(result.rows)
    for k, lead in enumerate(lead_times(ctx)):
        sem = raw[:, k].std(ddof=1) / math.sqrt(len(raw)) if len(raw) > 1 else math.nan
        rows += make_rows("union", f"t={lead:g}", lead, 0, {"raw_mae": raw[:, k].mean()}, len(raw), {"raw_mae": sem})
    idx, leads = hour_frames(ctx, ctx.config.studies.frame_hours)
    arrays = {**result.arrays, "raw_mae": raw, "hour_index": idx, "hour_leads": leads}
    return StudyResult("active_area", tuple(rows), {**result.summary, "hours": leads.tolist()}, arrays)


# -- centre of mass ------------------------------------------------------------------------------------------------
def _center_of_mass(ctx: StudyContext) -> StudyResult:
    """The model's centroid displacement (km) from the observed one per lead time: dx/dy scatter, r histograms."""
    px = ctx.config.data.pixel_km
    result = fields.center_of_mass(np.asarray(ctx.outputs["frames"]), observed(ctx), lead_times(ctx).tolist(), px)
    idx, leads = hour_frames(ctx, ctx.config.studies.frame_hours)
    return dataclasses.replace(result, arrays={**result.arrays, "hour_index": idx, "hour_leads": leads})


# -- differential trend --------------------------------------------------------------------------------------------
def _differential_trend(ctx: StudyContext) -> StudyResult:
    """Predicted vs observed change of the mean rain rate from the last observed frame to 1, 2, 3 h, with quadrant
    counts (I: both intensify, III: both weaken)."""
    idx, leads = hour_frames(ctx, ctx.config.studies.trend_hours)
    prediction, truth = np.asarray(ctx.outputs["frames"])[:, idx], observed(ctx)[:, idx]
    result = fields.differential_trend(prediction, truth, last_input(ctx), leads.tolist())
    return _with_summary(result, start="the last observed frame (lead time 0)")


# -- prediction stability ------------------------------------------------------------------------------------------
def _members(forecaster, items, keys, *, members: int):
    """MAE and centroid displacement (px) of ``members`` noise draws per event: (B, K, n_targets) each."""
    d = forecaster.data
    frames = items.events.frames
    inputs, truth = frames[:, : d.n_inputs], frames[:, d.n_inputs :]

    def one(x, y, key):
        ens = model.predict_ensemble(forecaster.weights, forecaster.model, d, x[None], key, members)[0]  # (K, T, H, W)
        mae = jnp.mean(jnp.abs(ens - y[None]), axis=(-2, -1))
        r = jnp.linalg.norm(stats.centroid(ens) - stats.centroid(y)[None], axis=-1)
        return mae, r

    mae, r = jax.lax.map(lambda a: one(*a), (inputs, truth, keys))
    return {"mae": mae, "com_r": r}


def _stability(ctx: StudyContext) -> StudyResult:
    """``stability_events`` evenly spaced test events through ``stability_keys`` noise keys of the generative decoder:
    per event and lead time the spread (standard deviation over keys) of MAE and of the centroid displacement; an
    event is an outlier at a lead when its spread exceeds q75 + 3 IQR of all events' spreads there."""
    s = ctx.config.studies
    n = ctx.items.events.num_events
    picked = np.unique(np.linspace(0, n - 1, min(s.stability_events, n)).round().astype(int))
    items = jax.tree.map(lambda a: np.asarray(a)[picked], ctx.items)
    values = ctx.stage(
        f"stability.k{s.stability_keys}.e{len(picked)}",
        lambda: ctx.map(
            functools.partial(_members, members=s.stability_keys), ctx.shared, items, ctx.key, description="stability"
        ),
    )
    rows, outliers = [], {}
    leads = lead_times(ctx)
    for metric, v in values.items():
        v = np.asarray(v, float)  # (events, K, T)
        spread = v.std(axis=1, ddof=1)
        for k, lead in enumerate(leads):
            q25, q75 = np.quantile(spread[:, k], [0.25, 0.75])
            flagged = np.flatnonzero(spread[:, k] > q75 + 3 * (q75 - q25))
            outliers.setdefault(metric, {})[f"t={lead:g}"] = picked[flagged].tolist()
            row = {f"{metric}_spread_mean": spread[:, k].mean(), f"{metric}_spread_max": spread[:, k].max()}
            rows += make_rows("", f"t={lead:g}", lead, 0, row | {f"{metric}_mean": v[:, :, k].mean()}, len(picked))
    summary = {
        "events": picked.tolist(),
        "keys": s.stability_keys,
        "outliers": outliers,
        "generative": ctx.config.model.generative,
    }
    return StudyResult(
        "stability", tuple(rows), summary, {k: np.asarray(v) for k, v in values.items()} | {"lead_times": leads}
    )


# -- correlations --------------------------------------------------------------------------------------------------
def _correlations(ctx: StudyContext) -> StudyResult:
    """MAE against the mean observed rain rate and the centroid displacement, and the displacement against the
    intensity, over every (event, lead time at 1, 2, 3 h) of the model (the method's figure 21)."""
    idx, _ = hour_frames(ctx, ctx.config.studies.frame_hours)
    take = lambda name: np.asarray(ctx.per_sample[name], float)[:, idx].ravel()  # noqa: E731
    mae, r, intensity = take("mae"), take("com_r") * ctx.config.data.pixel_km, take("mean_observed")
    ok = np.isfinite(mae) & np.isfinite(r) & np.isfinite(intensity)
    result = analyses.metric_correlation(
        {"mae_mmh": mae[ok], "com_displacement_km": r[ok]},
        {"mean_observed_mmh": intensity[ok], "com_displacement_km": r[ok]},
    )
    rows = tuple(row for row in result.rows if row.group != "com_displacement_km~com_displacement_km")
    return StudyResult(
        "correlations", rows, {**result.summary, "points": int(ok.sum()), "dropped": int((~ok).sum())}, result.arrays
    )


# -- the model against every baseline ------------------------------------------------------------------------------
COMPARED = ("csi_{t}", "ncsi_{t}", "mae", "active_mae_union", "com_r", "fss_{f}_s{s}")


def _baselines(ctx: StudyContext) -> StudyResult:
    """Every forecaster (the model, then pysteps') on every metric per lead time: CSI pooled over events (hits,
    misses and false alarms summed), the others the mean over events (standard error)."""
    m = ctx.config.metrics
    names = [MODEL, *ctx.items.baselines]
    metrics = [
        c.format(t=f"{t:g}", f=f"{m.fss_threshold_mmh:g}", s=m.fss_scale) for c in COMPARED for t in m.thresholds_mmh
    ]
    metrics = list(dict.fromkeys(metrics))
    rows = []
    leads = lead_times(ctx)
    for name in names:
        prefix = "" if name == MODEL else f"{name}."
        for metric in metrics:
            kind, _, t = metric.partition("csi_")
            if metric.endswith(tuple(f"csi_{x:g}" for x in m.thresholds_mmh)) and kind in ("", "n"):
                h, mi, fa = (
                    np.asarray(ctx.per_sample[f"{prefix}{kind}{c}_{t}"], float).sum(0)
                    for c in ("hits", "misses", "false_alarms")
                )
                denom = h + mi + fa
                with np.errstate(all="ignore"):
                    values, errors, support = np.where(denom > 0, h / denom, np.nan), np.full(len(leads), np.nan), denom
            else:
                v = np.asarray(ctx.per_sample[prefix + metric], float)
                ok = np.isfinite(v)
                support = ok.sum(0)
                with np.errstate(all="ignore"):
                    values = np.nansum(v, 0) / np.maximum(support, 1)
                    values = np.where(support > 0, values, np.nan)
                    errors = np.nanstd(np.where(ok, v, np.nan), 0, ddof=1) / np.sqrt(np.maximum(support, 1))
            for k, lead in enumerate(leads):
                if np.isfinite(values[k]):
                    rows += make_rows(
                        name, f"t={lead:g}", lead, 0, {metric: values[k]}, int(support[k]), {metric: errors[k]}
                    )
    best = {}
    for metric in metrics:
        by_name = {
            r.group: r.value for r in rows if r.metric == metric and abs(r.x - leads[min(2, len(leads) - 1)]) < 1e-9
        }
        if by_name:
            lower = metric in ("mae", "active_mae_union", "com_r")
            best[metric] = (min if lower else max)(by_name, key=by_name.get)
    return StudyResult(
        "baselines", tuple(rows), {"forecasters": names, f"best_at_{leads[min(2, len(leads) - 1)]:g}min": best}
    )


# -- motion --------------------------------------------------------------------------------------------------------
def _motion(ctx: StudyContext) -> StudyResult:
    """The model's motion fields and the extrapolation baselines' against the generator's true motion: mean end-point
    error (px/step) over rainy pixels per lead time, and the mean speeds; the arrays keep one event's fields."""
    d = ctx.config.data
    truth = true_motion(ctx.items.events, d.n_inputs, d.n_targets)
    leads = lead_times(ctx)
    rows = []
    names = [MODEL, *(n for n in ctx.items.baseline_motion if n != "persistence")]
    for name in names:
        key = "motion_epe" if name == MODEL else f"{name}.motion_epe"
        if key not in ctx.per_sample:
            continue
        v = np.asarray(ctx.per_sample[key], float)
        for k, lead in enumerate(leads):
            ok = np.isfinite(v[:, k])
            if ok.any():
                sem = v[ok, k].std(ddof=1) / math.sqrt(ok.sum()) if ok.sum() > 1 else math.nan
                rows += make_rows(
                    name,
                    f"t={lead:g}",
                    lead,
                    0,
                    {"endpoint_error_px": v[ok, k].mean()},
                    int(ok.sum()),
                    {"endpoint_error_px": sem},
                )
    model_motion = np.asarray(ctx.outputs["motion"])
    arrays = {"model": model_motion[0, 0], "lead_times": leads}
    arrays |= {n: np.asarray(m)[0] for n, m in ctx.items.baseline_motion.items() if n != "persistence"}
    arrays["frame"] = last_input(ctx)[0]
    summary = {"true_motion": truth is not None}
    if truth is not None:
        arrays["true"] = truth[0, 0]
        summary["true_speed_px_mean"] = float(np.hypot(truth[:, :, 0], truth[:, :, 1]).mean())
    summary["model_speed_px_mean"] = float(np.hypot(model_motion[:, :, 0], model_motion[:, :, 1]).mean())
    return StudyResult("motion", tuple(rows), summary, arrays)


# -- power spectra -------------------------------------------------------------------------------------------------
def mean_spectra(frames: np.ndarray, pixel_km: float) -> tuple[np.ndarray, np.ndarray]:
    """The radially averaged power spectrum (pysteps' rapsd) of frames (E, T, H, W), averaged over the events:
    (T, F) and the frequencies (F,) 1/km."""
    spectra, freq = jax.jit(jax.vmap(jax.vmap(lambda f: verification.rapsd(f, pixel_km))))(jnp.asarray(frames))
    return np.asarray(jnp.mean(spectra, axis=0), np.float64), np.asarray(freq[0, 0], np.float64)


def _power_spectrum(ctx: StudyContext) -> StudyResult:
    """Each forecaster's mean power spectrum per lead time against the observed one: the power ratio at the small
    scales (the upper half of the frequencies: wavelengths of 2-4 pixels) and the large ones (wavelengths above 8
    pixels). A ratio below 1 is a smoothed forecast: extrapolation keeps the texture, S-PROG and ensemble means
    blur it, and the generative decoder is there to put it back."""
    d = ctx.config.data
    truth, freq = mean_spectra(observed(ctx), d.pixel_km)
    forecasts = {MODEL: ctx.outputs["frames"], "evolution operator": ctx.outputs["evolved"], **ctx.items.baselines}
    n = len(freq)
    small, large = slice(n // 2, n), slice(1, max(2, n // 8))
    rows, arrays = [], {"observed": truth, "frequencies": freq, "lead_times": lead_times(ctx)}
    for name, frames in forecasts.items():
        spectra, _ = mean_spectra(np.asarray(frames), d.pixel_km)
        arrays[name] = spectra
        for k, lead in enumerate(lead_times(ctx)):
            ratio = {
                "power_ratio_small_scales": spectra[k, small].sum() / truth[k, small].sum(),
                "power_ratio_large_scales": spectra[k, large].sum() / truth[k, large].sum(),
            }
            rows += make_rows(name, f"t={lead:g}", lead, 0, ratio, len(frames))
    return StudyResult("power_spectrum", tuple(rows), {"pixel_km": d.pixel_km, "frequencies_per_km": n}, arrays)


FRAME_SLICES = dataclasses.replace(
    fields.FRAME_SLICES,
    plot=line_plot(
        "lead time (min)", "The model's per-event metrics at 1, 2 and 3 h (mean ± standard error over events)."
    ),
)
CUMULATIVE_CSI = StudyInfo(
    "cumulative_csi",
    "Cumulative CSI (CuCSI)",
    "How is the CSI of the events that respond to a threshold distributed at each lead time?",
    plots.cucsi,
)
ACTIVE_AREA = StudyInfo(
    "active_area",
    "Raw vs active-area MAE",
    "Is the MAE dominated by dry pixels, and how does the error where it rains evolve?",
    plots.active_area,
)
CENTER_OF_MASS = StudyInfo(
    "center_of_mass",
    "Centre-of-mass displacement",
    "How far, and in which direction, is the predicted rain mass from the observed one?",
    plots.center_of_mass,
)
STABILITY = StudyInfo(
    "stability",
    "Prediction stability",
    "How much do MAE and the centroid move when only the generative noise changes?",
    plots.stability,
)
CORRELATIONS = dataclasses.replace(
    CORRELATION,
    name="correlations",
    title="Metric correlations",
    question="Is the MAE driven by the rain intensity or by the displacement?",
)
BASELINES = StudyInfo(
    "baselines",
    "The model against the pysteps baselines",
    "Does the model beat persistence, extrapolation, S-PROG and STEPS, on which metric and lead time?",
    plots.baselines,
)
POWER_SPECTRUM = StudyInfo(
    "power_spectrum",
    "Power spectra: does the forecast keep the texture of the rain?",
    "How much small-scale power does each forecaster keep, per lead time, against the observed fields?",
    plots.power_spectrum,
)
MOTION = StudyInfo(
    "motion",
    "Motion field against the truth",
    "Does the evolution network find the true advection, better than optical flow?",
    plots.motion,
)

STUDIES = {
    "frame_slices": Study(FRAME_SLICES, _frame_slices),
    "cumulative_csi": Study(CUMULATIVE_CSI, _cumulative_csi),
    "active_area": Study(ACTIVE_AREA, _active_area),
    "center_of_mass": Study(CENTER_OF_MASS, _center_of_mass),
    "differential_trend": Study(fields.DIFFERENTIAL_TREND, _differential_trend),
    "stability": Study(STABILITY, _stability),
    "correlations": Study(CORRELATIONS, _correlations),
    "baselines": Study(BASELINES, _baselines),
    "motion": Study(MOTION, _motion),
    "power_spectrum": Study(POWER_SPECTRUM, _power_spectrum),
}
