"""Figures of ``top_tagging-v0``: ROC curves in the tagging convention, score and observable distributions, the
training history, and signal / background accuracy per jet-energy bin."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxbench.kernels import classification  # noqa: E402
from jaxbench.studies.table import StudyResult  # noqa: E402


def _roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signal efficiency, background rejection 1/eps_B) of the kernel's ROC (points with eps_B > 0)."""
    curve = classification.roc(np.asarray(scores), np.asarray(labels))
    tpr, fpr = np.asarray(curve.tpr), np.asarray(curve.fpr)
    keep = fpr > 0
    return tpr[keep], 1.0 / fpr[keep]


def roc_axes(ax: plt.Axes, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Background rejection (log) vs signal efficiency, one line per named (scores, labels)."""
    for name, (scores, labels) in curves.items():
        eff, rejection = _roc_points(scores, labels)
        ax.plot(eff, rejection, lw=1.2, label=name)
    ax.set(xlabel="signal efficiency εS", ylabel="background rejection 1/εB", yscale="log", xlim=(0, 1))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)


def rocs(arrays: dict) -> plt.Figure:
    """The ROC of every ``score.<variant>.n<n>`` array against ``labels``."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    labels = arrays["labels"]
    roc_axes(ax, {k.removeprefix("score."): (v, labels) for k, v in arrays.items() if k.startswith("score.")})
    fig.tight_layout()
    return fig


def tagger_overview(outputs: dict, labels: np.ndarray, history_loss: np.ndarray) -> plt.Figure:
    """Four panels: the ROC of ParT and the baseline, ParT's score per class, jet mass and tau3/tau2 per class, and
    the training loss per step."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    labels = np.asarray(labels)
    roc_axes(
        axes[0, 0],
        {"Particle Transformer": (outputs["score"], labels), "baseline (m, τ32)": (outputs["baseline_score"], labels)},
    )
    bins = np.linspace(0, 1, 41)
    for value, name in ((1, "top"), (0, "QCD")):
        axes[0, 1].hist(np.asarray(outputs["score"])[labels == value], bins, histtype="step", density=True, label=name)
    axes[0, 1].set(xlabel="ParT top probability", ylabel="density", yscale="log")
    axes[0, 1].legend(fontsize=7)
    ax = axes[1, 0]
    for value, name, colour in ((1, "top", "tab:red"), (0, "QCD", "tab:blue")):
        pick = labels == value
        ax.scatter(
            np.asarray(outputs["mass_gev"])[pick],
            np.asarray(outputs["tau32"])[pick],
            s=3,
            alpha=0.4,
            c=colour,
            label=name,
        )
    ax.set(xlabel="jet mass (GeV)", ylabel="τ3/τ2")
    ax.legend(fontsize=7)
    axes[1, 1].plot(np.arange(1, len(history_loss) + 1), history_loss, lw=0.8)
    axes[1, 1].set(xlabel="training step", ylabel="cross-entropy (batch)", yscale="log")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def signal_background(result: StudyResult) -> plt.Figure:
    """Signal and background accuracy per jet-energy bin of the model trained on the two lowest bins (or the one
    lowest when there is only one range), with each test bin's signal fraction."""
    groups = result.groups()
    group = groups[1] if len(groups) > 1 else groups[0]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for metric, colour in (
        ("signal_accuracy", "tab:red"),
        ("background_accuracy", "tab:blue"),
        ("signal_fraction", "k"),
    ):
        rows = result.select(metric, group)
        slices = list(dict.fromkeys(r.slice for r in rows))
        mean = [np.mean([r.value for r in rows if r.slice == s]) for s in slices]
        errors = [np.asarray([r.error for r in rows if r.slice == s], float) for s in slices]
        error = [e[np.isfinite(e)].mean() if np.isfinite(e).any() else 0.0 for e in errors]  # fractions: no error
        ax.errorbar(
            range(len(slices)),
            mean,
            yerr=np.nan_to_num(error),
            marker="o",
            ms=3,
            capsize=2,
            color=colour,
            ls="--" if metric == "signal_fraction" else "-",
            label=metric.replace("_", " "),
        )
    ax.set_xticks(range(len(slices)), slices, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="fraction", title=group, ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
