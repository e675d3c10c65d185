"""The nowcasting studies' figures (matplotlib, imported when a figure draws); each reads only a saved StudyResult,
so ``jaxbench report`` re-draws them."""

from __future__ import annotations

import numpy as np

from jaxbench.kernels import fields
from jaxbench.report import Figure, figure_png
from jaxbench.studies import StudyResult
from jaxbench.studies import plots as study_plots


def cucsi(result: StudyResult) -> list[Figure]:
    """One CuCSI histogram (lead time x CSI bin, colour = fraction of X_T) per threshold."""
    figures = []
    for t, info in result.summary.get("thresholds", {}).items():
        arrays = {k.rsplit(".", 1)[0]: v for k, v in result.arrays.items() if k.endswith(f".{t}")}
        sub = StudyResult(result.study, (), {**info, "metric": f"CSI at {t} mm/h"}, arrays)
        caption = (
            f"CuCSI at {t} mm/h: the CSI distribution per lead time over the {info.get('selected_samples', 0)} of "
            f"{info.get('events', 0)} events whose contingency is non-empty at every lead (N = "
            f"{result.summary.get('n_bins')}, s = {result.summary.get('step')})."
        )
        figures.append(fields.histogram_per_lead(sub, f"study_cumulative_csi_{t}", caption))
    return figures


def active_area(result: StudyResult) -> list[Figure]:
    """Raw and active-area MAE per lead time, and their per-event histograms at 1, 2, 3 h."""
    line = study_plots.metric_vs_x(
        result, "study_active_area", "Raw MAE and active-area MAE per lead time (mean ± standard error).", "lead (min)",
        metrics=("raw_mae", "active_mae_per_event", "active_mae_pooled"),
    )  # fmt: skip
    raw, active = np.asarray(result.arrays["raw_mae"]), np.asarray(result.arrays["active_mae"])
    idx, leads = np.asarray(result.arrays["hour_index"]), np.asarray(result.arrays["hour_leads"])
    fig, axes = study_plots._figure(2 * len(idx), width=3.4, height=2.8)
    for j, (k, lead) in enumerate(zip(idx, leads)):
        for row, (values, label) in enumerate(((raw[:, k], "raw MAE"), (active[:, k], "active-area MAE"))):
            ax = axes[row * len(idx) + j] if len(idx) <= 3 else axes[2 * j + row]
            ax.hist(values[np.isfinite(values)], bins=20, color="C0" if row == 0 else "C1")
            ax.set_title(f"{label}, {lead:g} min", fontsize=9)
            ax.set_xlabel("mm/h")
    fig.tight_layout()
    caption = "Per-event distributions of the raw MAE (top) and the active-area MAE (bottom) at 1, 2, 3 h."
    return [line, Figure("study_active_area_hist", caption, figure_png(fig))]


def center_of_mass(result: StudyResult) -> list[Figure]:
    """dx/dy scatter and displacement histograms at 1, 2, 3 h, and r per lead time."""
    dx, dy, r = (np.asarray(result.arrays[k]) for k in ("dx", "dy", "r"))
    idx, leads = np.asarray(result.arrays["hour_index"]), np.asarray(result.arrays["hour_leads"])
    fig, axes = study_plots._figure(2 * len(idx), width=3.4, height=3.0)
    unit = "km" if result.summary.get("pixel_size", 1) != 1 else "px"
    for j, (k, lead) in enumerate(zip(idx, leads)):
        ax = axes[j] if len(idx) <= 3 else axes[2 * j]
        ax.scatter(dx[:, k], dy[:, k], s=5, alpha=0.6)
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set(title=f"{lead:g} min", xlabel=f"dx ({unit})", ylabel=f"dy ({unit})")
        ax = axes[len(idx) + j] if len(idx) <= 3 else axes[2 * j + 1]
        ax.hist(r[np.isfinite(r[:, k]), k], bins=20)
        ax.set(xlabel=f"δr ({unit})", ylabel="events")
    fig.tight_layout()
    caption = "Predicted minus observed centroid at 1, 2, 3 h (top: dx, dy per event; bottom: δr histograms)."
    hist = fields.displacement_hist(result, "study_center_of_mass_box", "Centroid displacement δr per lead time.")
    return [Figure("study_center_of_mass", caption, figure_png(fig)), hist]


def stability(result: StudyResult) -> list[Figure]:
    """Per-event histograms of MAE and δr over the noise keys at 1, 2, 3 h (one colour per event)."""
    leads = np.asarray(result.arrays["lead_times"])
    show = [k for k in (5, 11, 17) if k < len(leads)] or [len(leads) - 1]
    metrics = [m for m in ("mae", "com_r") if m in result.arrays]
    fig, axes = study_plots._figure(len(metrics) * len(show), width=3.4, height=2.8)
    for i, metric in enumerate(metrics):
        values = np.asarray(result.arrays[metric])  # (events, keys, T)
        for j, k in enumerate(show):
            ax = axes[i * len(show) + j]
            for e in range(values.shape[0]):
                ax.hist(values[e, :, k], bins=16, alpha=0.5, color=f"C{e % 10}")
            ax.set_title(f"{metric} at {leads[k]:g} min", fontsize=9)
    fig.tight_layout()
    caption = f"MAE (mm/h) and centroid displacement (px) of each event over {result.summary.get('keys')} noise keys."
    lines = study_plots.metric_vs_x(result, "study_stability_spread", "Spread over keys per lead.", "lead (min)",
                                    metrics=("mae_spread_mean", "com_r_spread_mean"))  # fmt: skip
    return [Figure("study_stability", caption, figure_png(fig)), lines]


def baselines(result: StudyResult) -> list[Figure]:
    """Every metric per lead time, one line per forecaster."""
    metrics = result.metrics()
    figures = []
    for i in range(0, len(metrics), study_plots.MAX_PANELS):
        part = metrics[i : i + study_plots.MAX_PANELS]
        caption = "The model and the pysteps baselines per lead time (CSI pooled over events; others mean ± s.e.)."
        figures.append(study_plots.metric_vs_x(result, f"study_baselines_{i}", caption, "lead (min)", metrics=part))
    return figures


def motion(result: StudyResult) -> list[Figure]:
    """End-point error per lead time, and one event's fields: true, the model's first step, the baselines'."""
    figures = []
    if result.rows:
        caption = "Mean end-point error (px/step) of each motion field against the generator's true one, rainy pixels."
        figures.append(study_plots.metric_vs_x(result, "study_motion_epe", caption, "lead (min)"))
    names = [n for n in ("true", "model", "extrapolation", "sprog", "steps") if n in result.arrays]
    fig, axes = study_plots._figure(len(names), width=3.4, height=3.4)
    frame = np.asarray(result.arrays["frame"])
    for ax, name in zip(axes, names):
        u, v = np.asarray(result.arrays[name])
        step = max(1, frame.shape[0] // 16)
        ys, xs = np.mgrid[0 : frame.shape[0] : step, 0 : frame.shape[1] : step]
        ax.imshow(frame, cmap="Blues", vmin=0, vmax=max(float(frame.max()), 1.0))
        ax.quiver(xs, ys, u[::step, ::step], -v[::step, ::step], color="C3", angles="xy")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    caption = "The first test event's last observed frame with motion fields (arrows; rows grow downwards)."
    figures.append(Figure("study_motion_fields", caption, figure_png(fig)))
    return figures


def power_spectrum(result: StudyResult) -> list[Figure]:
    """Mean power spectra at the first lead time and at 1 h (or the last), one line per forecaster, log-log; and the
    small-scale power ratio per lead."""
    arrays = result.arrays
    freq, leads = np.asarray(arrays["frequencies"]), np.asarray(arrays["lead_times"])
    names = [n for n in arrays if n not in ("frequencies", "lead_times")]
    picks = sorted({0, int(np.argmin(np.abs(leads - 60.0)))})
    fig, axes = study_plots._figure(len(picks), width=4.2, height=3.4)
    for ax, k in zip(axes, picks):
        for name in names:
            style = {"color": "k", "lw": 2} if name == "observed" else {}
            ax.loglog(freq[1:], np.asarray(arrays[name])[k, 1:], label=name, **style)
        ax.set_xlabel("frequency (1/km)")
        ax.set_title(f"lead {leads[k]:g} min", fontsize=9)
    axes[0].set_ylabel("power")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    caption = "Radially averaged power spectra (pysteps' rapsd), mean over the test events; observed in black."
    figures = [Figure("study_power_spectrum", caption, figure_png(fig))]
    ratio = "Forecast / observed power at the small scales (wavelengths of 2-4 pixels) per lead."
    figures.append(
        study_plots.metric_vs_x(result, "study_power_ratio", ratio, "lead (min)", metrics=("power_ratio_small_scales",))
    )
    return figures
