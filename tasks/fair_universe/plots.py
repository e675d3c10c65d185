"""Figures of a ``fair_universe-v0`` run: coverage, widths, pulls, templates, generated features."""

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


def per_mu(metrics: dict, key: str, ylabel: str, band: bool = False) -> Figure:
    """``key`` of both estimators per mu_true; with ``band`` the 0.6827 ± 2 sigma68 target band."""
    mu_values = np.asarray(metrics["mu_values"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, label in ESTIMATORS:
        ax.plot(mu_values, metrics[name]["per_mu"][key], "o-", label=label)
    if band:
        sigma = np.sqrt(0.6827 * 0.3173 / np.maximum(np.asarray(metrics["profiled"]["per_mu"]["n"], float), 1))
        ax.fill_between(
            mu_values, 0.6827 - 2 * sigma, 0.6827 + 2 * sigma, color="grey", alpha=0.25, label="0.6827 ± 2σ68"
        )
        ax.axhline(0.6827, color="grey", lw=1)
        ax.set_ylim(0, 1.02)
    ax.set(xlabel="μ_true", ylabel=ylabel)
    ax.legend(fontsize=8, loc="best")
    return fig


def pulls(outputs: Any, mu_true: np.ndarray) -> Figure:
    """Pull distributions of both estimators against N(0, 1); pulls beyond ±5 fill the edge bins."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, label in ESTIMATORS:
        mu_hat, p16, p84 = (np.asarray(getattr(outputs, f"{name}_{k}")) for k in ("mu_hat", "p16", "p84"))
        pull = (mu_hat - mu_true) / (0.5 * (p84 - p16))
        clipped = int(np.sum(np.abs(pull) > 5))
        ax.hist(
            np.clip(pull, -5, 5),
            bins=40,
            range=(-5, 5),
            density=True,
            histtype="step",
            lw=1.5,
            label=f"{label} ({clipped} clipped at ±5)",
        )
    grid = np.linspace(-5, 5, 201)
    ax.plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set(xlabel="pull (μ̂ − μ_true) / half-width", ylabel="density")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def templates_and_history(templates: Any, hist: np.ndarray, mu_example: float, history: Any) -> Figure:
    """Left: stacked nominal templates per score bin and one PE; right: classifier training history."""
    edges, nominal = np.asarray(templates.edges), np.asarray(templates.nominal)
    centers = np.arange(nominal.shape[1])
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    bottom = np.zeros(nominal.shape[1])
    for p in (1, 2, 3, 0):
        name = schema.PROCESSES[p]
        ax.bar(centers, nominal[p], bottom=bottom, width=1.0, color=COLORS[name], alpha=0.8, label=name)
        bottom = bottom + nominal[p]
    ax.errorbar(centers, hist, yerr=np.sqrt(hist), fmt="k.", label=f"one PE (μ_true={mu_example:.2f})")
    ax.set_yscale("log")
    ax.set_xticks(centers[::2], [f"{e:.2f}" for e in edges[:-1:2]], fontsize=7)
    ax.set(
        xlabel="classifier-score bin (lower edge; equal expected signal per bin)", ylabel="expected events / PE (μ=1)"
    )
    ax.legend(fontsize=7, loc="lower left")
    epochs = np.arange(1, len(np.asarray(history.train_loss)) + 1)
    ax_loss.plot(epochs, np.asarray(history.train_loss), label="train")
    ax_loss.plot(epochs, np.asarray(history.valid_loss), label="validation")
    ax_loss.set(xlabel="epoch", ylabel="class-balanced BCE")
    ax_loss.legend(fontsize=8)
    return fig


def feature_distributions(pri: np.ndarray, der: np.ndarray, weights: np.ndarray, process: np.ndarray) -> Figure:
    """Weighted, normalised distributions per process of six features."""
    panels = (
        ("DER_mass_vis [GeV]", der[:, schema.DER["DER_mass_vis"]], (0, 200)),
        ("PRI_met [GeV]", pri[:, schema.PRI["PRI_met"]], (0, 150)),
        ("DER_mass_transverse_met_lep [GeV]", der[:, schema.DER["DER_mass_transverse_met_lep"]], (0, 150)),
        ("PRI_had_pt [GeV]", pri[:, schema.PRI["PRI_had_pt"]], (20, 150)),
        ("PRI_n_jets", pri[:, schema.PRI["PRI_n_jets"]], (-0.5, 5.5)),
        ("DER_deltar_had_lep", der[:, schema.DER["DER_deltar_had_lep"]], (0, 5)),
    )
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for axis, (label, values, value_range) in zip(axes.ravel(), panels):
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
        axis.set(xlabel=label, ylabel="normalised")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig
