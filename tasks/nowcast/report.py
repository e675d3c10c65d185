"""The summary table and report sections of a ``nowcast-v0`` run."""

from __future__ import annotations

import numpy as np

from jaxbench.report import Figure, ReportSection, Table, figure_png
from jaxbench.task import RunView

#: Summary columns: (metric key in a forecaster's scores, header).
COLUMNS = (
    ("csi_16_30min", "CSI 16 @30 min"),
    ("csi_32_30min", "CSI 32 @30 min"),
    ("csi_16_60min", "CSI 16 @60 min"),
    ("csi_32_60min", "CSI 32 @60 min"),
    ("ncsi_16_60min", "nbhd CSI 16 @60"),
    ("mae_60min", "MAE @60 (mm/h)"),
    ("active_mae_union_60min", "active MAE @60"),
    ("com_r_60min", "δr @60 (px)"),
    ("motion_epe_30min", "motion EPE @30 (px/step)"),
)


def forecaster_names(metrics: dict) -> list[str]:
    """The model first, then the baselines, as the scores list them."""
    return list(metrics.get("settings", {}).get("forecasters", ["model"]))


def summary(metrics: dict) -> Table:
    """Every forecaster's pooled CSI and mean errors at 30 and 60 min (— where the data have no such lead or event)."""
    rows = []
    for name in forecaster_names(metrics):
        scores = metrics if name == "model" else metrics.get(name, {})
        rows.append((name, *(scores.get(key) for key, _ in COLUMNS)))
    settings = metrics.get("settings", {})
    caption = (
        f"Nowcasts of {metrics.get('test_events', '?')} test events: CSI with rain {settings.get('operator', '>=')} "
        f"threshold (mm/h), contingency pooled over events; NaN pixels: {settings.get('nan_policy', 'no_event')}"
    )
    return Table(caption, ("forecaster", *(header for _, header in COLUMNS)), tuple(rows))


def _example(view: RunView) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = view.config.data
    frames = np.asarray(view.items.events.frames)
    event = int(np.argmax(frames[:, d.n_inputs :].mean(axis=(1, 2, 3))))  # the rainiest test event
    leads = [k for k in (2, 5, 11, 17) if k < d.n_targets] or [d.n_targets - 1]
    rows = {"observed": frames[event, d.n_inputs :], "model": np.asarray(view.outputs["frames"])[event]}
    rows |= {name: np.asarray(f)[event] for name, f in view.items.baselines.items()}
    fig, axes = plt.subplots(
        len(rows), len(leads) + 1, figsize=(2.2 * (len(leads) + 1), 2.2 * len(rows)), squeeze=False
    )
    vmax = max(float(frames[event].max()), 1.0)
    for i, (name, series) in enumerate(rows.items()):
        axes[i, 0].imshow(frames[event, d.n_inputs - 1], cmap="viridis", vmin=0, vmax=vmax)
        axes[i, 0].set_ylabel(name, fontsize=9)
        axes[i, 0].set_title("last input" if i == 0 else "", fontsize=8)
        for j, k in enumerate(leads):
            axes[i, j + 1].imshow(series[k], cmap="viridis", vmin=0, vmax=vmax)
            if i == 0:
                axes[i, j + 1].set_title(f"+{d.lead_times_min[k]:g} min", fontsize=8)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    caption = f"Test event {int(view.items.events.case[event])} (the rainiest): observed and forecast rain (mm/h)."
    return Figure("nowcast_example", caption, figure_png(fig))


def _per_lead(view: RunView) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics, leads = view.metrics, view.config.data.lead_times_min
    panels = [f"csi_{t:g}" for t in view.config.metrics.thresholds_mmh] + ["mae", "active_mae_union"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for name in forecaster_names(metrics):
            scores = metrics if name == "model" else metrics.get(name, {})
            values = scores.get("per_lead", {}).get(panel)
            if values:
                ax.plot(leads, [np.nan if v is None else v for v in values], marker="o", ms=2, label=name)
        ax.set(title=panel, xlabel="lead (min)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return Figure("nowcast_per_lead", "Pooled CSI and mean MAE per lead time, every forecaster.", figure_png(fig))


def _training(view: RunView) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = view.params.history
    fields = [f for f in history._fields if np.asarray(getattr(history, f)).size]
    fig, axes = plt.subplots(1, len(fields), figsize=(3.2 * len(fields), 2.6), squeeze=False)
    for ax, name in zip(axes[0], fields):
        values = np.asarray(getattr(history, name), float)
        ax.plot(values, lw=0.6, alpha=0.4, color="C0")
        window = max(1, len(values) // 20)
        if window > 1:  # the running mean: single steps see one small batch, so the curve is noisy
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window - 1, len(values)), smooth, color="C0")
        ax.set(title=name, xlabel="step")
        ax.set_yscale("log") if np.nanmin(np.asarray(getattr(history, name), float), initial=1.0) > 0 else None
    fig.tight_layout()
    return Figure(
        "nowcast_training",
        "Training losses per step (evolution, then generative phase) and their running mean over 5% of the steps.",
        figure_png(fig),
    )


def sections(view: RunView) -> list[ReportSection]:
    """An example event, the scores per lead time, and the training curves."""
    text = (
        "Every forecaster sees the same observed frames. CSI counts a pixel as an event when the rain rate reaches "
        "the threshold; the table's CSIs pool hits, misses and false alarms over all test events (the standard "
        "aggregate), the per-event CSIs are in the per-sample arrays. The neighbourhood CSI max-pools both fields "
        "first. Active-area MAE keeps the pixels where the observed or predicted rain reaches "
        f"{view.config.metrics.active_threshold_mmh:g} mm/h. δr is the distance between the observed and predicted "
        "centroids of rain mass. The motion end-point error compares each motion field with the generator's true one "
        "(generated data only)."
    )
    figures = (_example(view), _per_lead(view), _training(view))
    return [ReportSection("Nowcasts", text, figures=figures)]
