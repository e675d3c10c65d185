"""Report sections of a ``fair_universe-v0`` run, from the run's in-memory results."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxbench.report import Figure, ReportSection, figure_png
from jaxbench.task import RunView

from . import plots, schema
from .derived import derived_features
from .systematics import apply_nominal

FEATURE_SAMPLE_PER_PROCESS = 20_000


def sections(view: RunView) -> list[ReportSection]:
    """Coverage and width vs mu_true, pulls, templates with one PE, generated feature distributions."""
    metrics, outputs, items = view.metrics, view.outputs, view.items
    mu_true = np.asarray(items.mu_true)
    example = int(np.argmin(np.abs(mu_true - 1.0)))
    pool = view.data.pool
    pri, weights, passed = (np.asarray(a) for a in apply_nominal(pool.pri, pool.weights, pool.process))
    process = np.asarray(pool.process)
    rows = np.concatenate(
        [np.flatnonzero(passed & (process == p))[:FEATURE_SAMPLE_PER_PROCESS] for p in range(len(schema.PROCESSES))]
    )
    der = np.asarray(derived_features(jnp.asarray(pri[rows])))
    source = "the embedded generator" if view.source == "generated" else f"the file {view.source}"
    return [
        ReportSection(
            "What the numbers mean",
            f"{metrics['n_pseudo_experiments']} pseudo-experiments at {len(metrics['mu_values'])} values of μ_true "
            f"from {source}, nuisances drawn from the challenge's priors. The profiled estimator fits all six "
            "nuisances; the statistical-only one fixes them at nominal, which is what ignoring systematics costs. "
            "Coverage score = −ln((mean width + 10⁻³) · f(coverage)), f = 1 inside 0.6827 ± 2σ68 and growing "
            "outside. 'RMSE/MAE of mu_hat' are plain errors of μ̂; scores.json's rmse/mae follow the challenge.",
        ),
        ReportSection(
            "Coverage and width vs μ_true",
            "",
            figures=(
                Figure(
                    "coverage_vs_mu",
                    "Coverage of the 68.27% interval per μ_true; the band is ±2σ68.",
                    figure_png(plots.per_mu(metrics, "coverage", "coverage of [p16, p84]", band=True)),
                ),
                Figure(
                    "width_vs_mu",
                    "Mean interval width per μ_true.",
                    figure_png(plots.per_mu(metrics, "width", "mean interval width |p84 − p16|")),
                ),
            ),
        ),
        ReportSection(
            "Pulls",
            "",
            figures=(
                Figure(
                    "pulls",
                    "Pull distribution; a calibrated estimator follows N(0, 1).",
                    figure_png(plots.pulls(outputs, mu_true)),
                ),
            ),
        ),
        ReportSection(
            "Classifier and templates",
            "",
            figures=(
                Figure(
                    "score_templates",
                    "Left: nominal templates (stacked) per score bin and one pseudo-experiment. Right: "
                    "classifier training history.",
                    figure_png(
                        plots.templates_and_history(
                            view.params.templates,
                            np.asarray(outputs.hist)[example],
                            float(mu_true[example]),
                            view.params.history,
                        )
                    ),
                ),
            ),
        ),
        ReportSection(
            "Events",
            "Weighted, normalised distributions per process after the analysis cuts at nominal systematics.",
            figures=(
                Figure(
                    "features",
                    f"Feature distributions of {source}.",
                    figure_png(plots.feature_distributions(pri[rows], der, weights[rows], process[rows])),
                ),
            ),
        ),
    ]
