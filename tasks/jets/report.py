"""The summary table and report sections of a ``top_tagging-v0`` run."""

from __future__ import annotations

import numpy as np

from jaxbench.report import Figure, ReportSection, Table, figure_png
from jaxbench.task import RunView

from . import plots

#: ParT on TopLandscape (Qu, Li, Qian, ICML 2022, table 3): a reference, not comparable until run on those files.
PUBLISHED = {"accuracy": 0.940, "auc": 0.9858, "rejection_at_50": 413.0, "rejection_at_30": 1602.0}
LABELS = {
    "accuracy": "accuracy (score > 0.5)",
    "auc": "AUC",
    "rejection_at_50": "background rejection 1/εB at εS = 0.5",
    "rejection_at_30": "background rejection 1/εB at εS = 0.3",
    "signal_accuracy": "signal (top) accuracy",
    "background_accuracy": "background (QCD) accuracy",
}


def _cell(metrics: dict, name: str) -> str:
    value, error = metrics.get(name), metrics.get(f"{name}_error")
    if value is None:
        return "—"
    bound = ">= " if metrics.get(f"{name}_is_lower_bound") else ""
    return f"{bound}{value:.4g} ± {error:.2g}" if error is not None and np.isfinite(error) else f"{bound}{value:.4g}"


def summary(metrics: dict) -> Table:
    """ParT and the baseline on the test jets (bootstrap errors), beside the published ParT figures."""
    rows = tuple(
        (label, _cell(metrics, name), _cell(metrics.get("baseline", {}), name), PUBLISHED.get(name))
        for name, label in LABELS.items()
    )
    return Table(
        f"Top tagging on {metrics.get('test_jets', '?')} test jets ({metrics.get('variant', 'physics')} inputs)",
        ("metric", "Particle Transformer", "baseline: mass + τ3/τ2", "ParT on TopLandscape (published)"),
        rows,
    )


def sections(view: RunView) -> list[ReportSection]:
    """The tagger's ROC against the baseline, its score per class, the baseline's observables and the training."""
    text = (
        "The signal is the hadronic top jet (label 1). Accuracy counts a jet as top when its score exceeds 0.5; "
        "background rejection is 1/εB at the threshold that keeps a signal efficiency εS (interpolated on the ROC). "
        "Errors are bootstrap standard errors over the test jets. The published TopLandscape figures are for "
        "1.2 M training jets and the real Delphes sample: generated jets and a CPU-sized model are not comparable "
        "with them."
    )
    figure = plots.tagger_overview(view.outputs, view.items.label, np.asarray(view.params.history.loss))
    caption = (
        "Top left: background rejection vs signal efficiency for ParT and the baseline (logistic regression on jet "
        "mass and τ3/τ2). Top right: ParT's top probability per class. Bottom left: jet mass vs τ3/τ2 of the test "
        "jets. Bottom right: training cross-entropy per step."
    )
    return [ReportSection("Tagger", text, figures=(Figure("jets_overview", caption, figure_png(figure)),))]
