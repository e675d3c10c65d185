"""Figures of a ``fair_universe-v0`` run: coverage, widths, pulls, templates, feature distributions."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from . import schema  # noqa: E402

ESTIMATORS = (("profiled", "profiled (6 nuisances)"), ("stat_only", "statistical only"))
COLORS = {"htautau": "#d62728", "ztautau": "#1f77b4", "ttbar": "#2ca02c", "diboson": "#9467bd"}


MU_LABEL = "μ_true (signal strength; 1 = Standard Model)"
PULL_RANGE = 5.0  # pulls beyond ±PULL_RANGE are drawn in the edge bins and counted in the legend


def _legend_below(ax: Any, ncol: int = 3, **kwargs: Any) -> None:
    """The legend under the axes, so it never covers data (report figures are saved with tight bounds)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, fontsize=8, frameon=False, **kwargs)


def per_mu(metrics: dict, key: str, ylabel: str, band: bool = False) -> Figure:
    """``key`` of both estimators per mu_true; with ``band`` the 0.6827 ± 2 sigma68 target band."""
    mu_values = np.asarray(metrics["mu_values"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, label in ESTIMATORS:
        ax.plot(mu_values, metrics[name]["per_mu"][key], "o-", label=label)
    if band:
        sigma = np.sqrt(0.6827 * 0.3173 / np.maximum(np.asarray(metrics["profiled"]["per_mu"]["n"], float), 1))
        ax.fill_between(
            mu_values, 0.6827 - 2 * sigma, 0.6827 + 2 * sigma, color="grey", alpha=0.25, label="0.6827 ± 2σ68 per μ"
        )
        ax.axhline(0.6827, color="grey", lw=1)
        ax.set_ylim(-0.03, 1.03)
    ax.set(xlabel=MU_LABEL, ylabel=ylabel)
    _legend_below(ax)
    return fig


def pull_values(outputs: Any, mu_true: np.ndarray, scored: np.ndarray) -> dict[str, np.ndarray]:
    """Pulls (mu_hat - mu_true) / half-width of the ``scored`` PEs, per estimator label."""
    out = {}
    for name, label in ESTIMATORS:
        mu_hat, p16, p84 = (np.asarray(getattr(outputs, f"{name}_{k}"))[scored] for k in ("mu_hat", "p16", "p84"))
        out[label] = (mu_hat - np.asarray(mu_true)[scored]) / (0.5 * (p84 - p16))
    return out


def clipped_pulls(pulls: dict[str, np.ndarray]) -> dict[str, int]:
    """How many pulls of each estimator lie beyond ±PULL_RANGE (drawn in the edge bins)."""
    return {label: int(np.sum(np.abs(v) > PULL_RANGE)) for label, v in pulls.items()}


def pulls(by_label: dict[str, np.ndarray]) -> Figure:
    """Pull distributions of both estimators against N(0, 1); pulls beyond ±5 fill the edge bins
    (hatched) and their count is in the legend."""
    fig, ax = plt.subplots(figsize=(6, 4))
    clipped = clipped_pulls(by_label)
    for label, values in by_label.items():
        ax.hist(
            np.clip(values, -PULL_RANGE, PULL_RANGE),
            bins=40,
            range=(-PULL_RANGE, PULL_RANGE),
            density=True,
            histtype="step",
            lw=1.5,
            label=f"{label}: {clipped[label]} of {values.size} beyond ±{PULL_RANGE:g}, in the edge bins",
        )
    width = 2 * PULL_RANGE / 40
    for edge in (-PULL_RANGE, PULL_RANGE - width):
        ax.axvspan(edge, edge + width, color="grey", alpha=0.15, hatch="//", lw=0)
    grid = np.linspace(-PULL_RANGE, PULL_RANGE, 201)
    ax.plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set(xlabel="pull (μ̂ − μ_true) / half-width (dimensionless)", ylabel="density (per unit pull)")
    _legend_below(ax, ncol=1)
    return fig


def templates_and_history(templates: Any, hist: np.ndarray, mu_example: float, history: Any) -> Figure:
    """Stacked nominal templates (signal on top) with one PE; the signal-to-background ratio per bin,
    where the signal shows; the classifier training history."""
    edges, nominal = np.asarray(templates.edges), np.asarray(templates.nominal)
    centers = np.arange(nominal.shape[1])
    ticks = (centers[::2], [f"{e:.2f}" for e in edges[:-1:2]])
    fig, (ax, ax_ratio, ax_loss) = plt.subplots(1, 3, figsize=(15, 4.2))
    bottom = np.zeros(nominal.shape[1])
    for p in (schema.ZTAUTAU, schema.TTBAR, schema.DIBOSON, schema.SIGNAL):  # signal on top
        name = schema.PROCESSES[p]
        ax.bar(centers, nominal[p], bottom=bottom, width=1.0, color=COLORS[name], alpha=0.8, label=name)
        bottom = bottom + nominal[p]
    ax.errorbar(centers, hist, yerr=np.sqrt(hist), fmt="k.", label=f"one PE (μ_true = {mu_example:.2f})")
    ax.set_yscale("log")
    ax.set_xticks(*ticks, fontsize=7)
    ax.set(xlabel="classifier-score bin (lower edge)", ylabel="expected events per PE per bin (μ = 1)")
    _legend_below(ax)
    background = np.sum(np.delete(nominal, schema.SIGNAL, axis=0), axis=0)
    ax_ratio.bar(centers, nominal[schema.SIGNAL] / np.maximum(background, 1e-12), width=1.0, color=COLORS["htautau"])
    ax_ratio.set_yscale("log")
    ax_ratio.set_xticks(*ticks, fontsize=7)
    ax_ratio.set(
        xlabel="classifier-score bin (lower edge; equal expected signal per bin)",
        ylabel="signal / background per bin (μ = 1)",
        title=f"signal only: {nominal[schema.SIGNAL].sum():.0f} expected htautau events per PE (μ = 1)",
    )
    ax_ratio.title.set_fontsize(9)
    epochs = np.arange(1, len(np.asarray(history.train_loss)) + 1)
    ax_loss.plot(epochs, np.asarray(history.train_loss), "o-", label="training")
    ax_loss.plot(epochs, np.asarray(history.valid_loss), "o-", label="validation (10% held out)")
    ax_loss.set(xlabel="epoch", ylabel="class-balanced BCE (nats per event)")
    ax_loss.xaxis.get_major_locator().set_params(integer=True)
    _legend_below(ax_loss, ncol=2)
    fig.tight_layout()
    return fig


def feature_distributions(pri: np.ndarray, der: np.ndarray, weights: np.ndarray, process: np.ndarray) -> Figure:
    """Weighted, normalised distributions per process of six features (legend above the panels)."""
    panels = (  # label, unit of the x axis (None: dimensionless), values, range
        ("DER_mass_vis", "GeV", der[:, schema.DER["DER_mass_vis"]], (0, 200)),
        ("PRI_met", "GeV", pri[:, schema.PRI["PRI_met"]], (0, 150)),
        ("DER_mass_transverse_met_lep", "GeV", der[:, schema.DER["DER_mass_transverse_met_lep"]], (0, 150)),
        ("PRI_had_pt", "GeV", pri[:, schema.PRI["PRI_had_pt"]], (20, 150)),
        ("PRI_n_jets", None, pri[:, schema.PRI["PRI_n_jets"]], (-0.5, 5.5)),
        ("DER_deltar_had_lep", None, der[:, schema.DER["DER_deltar_had_lep"]], (0, 5)),
    )
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for axis, (label, unit, values, value_range) in zip(axes.ravel(), panels):
        for p, name in enumerate(schema.PROCESSES):
            m = process == p
            if np.any(m):
                axis.hist(
                    values[m],
                    bins=6 if label == "PRI_n_jets" else 40,
                    range=value_range,
                    weights=weights[m],
                    density=True,
                    histtype="step",
                    lw=1.3,
                    color=COLORS[name],
                    label=name,
                )
        if label == "PRI_n_jets":
            axis.set(xlabel=f"PRI_n_jets (jets with pT > {schema.JET_PT_MIN:g} GeV)", ylabel="fraction of events")
        else:
            axis.set(
                xlabel=f"{label} [{unit}]" if unit else f"{label} (dimensionless)",
                ylabel=f"normalised density [1/{unit}]" if unit else "normalised density",
            )
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=9, frameon=False)
    return fig
