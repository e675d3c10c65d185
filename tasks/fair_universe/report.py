"""Report sections of a ``fair_universe-v0`` run, from the run's in-memory results."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxbench.kernels.coverage import OFFICIAL
from jaxbench.report import Figure, ReportSection, figure_png
from jaxbench.task import RunView

from . import plots, schema
from .derived import derived_features
from .scoring import scored
from .systematics import apply_nominal

FEATURE_SAMPLE_PER_PROCESS = 20_000
TARGET = OFFICIAL.target  # the challenge's coverage target, 0.6827


def data_source(view: RunView) -> str:
    """Where the run's events came from, in words: the embedded generator or the file's path."""
    if view.source == "generated":
        return "the embedded JAX event generator (jaxbench's simulation, not the challenge's files)"
    return f"the file {view.source}"


def meaning(view: RunView) -> str:
    """The opening text: data source, what the score and both RMSE conventions are, what was dropped."""
    metrics, config = view.metrics, view.config
    n, dropped = metrics["n_pseudo_experiments"], metrics.get("n_dropped", 0)
    scored = n - dropped
    sigma = np.sqrt(TARGET * (1 - TARGET) / max(scored, 1))
    profiled = metrics["profiled"]
    varied = ", ".join(config.analysis.systematics) or "none"
    paragraphs = [
        f"Data: {data_source(view)}; {view.data.train.num_events:,} events train the classifier and "
        f"{view.data.pool.num_events:,} form the pool the pseudo-experiments (PEs) are drawn from. {n} PEs at "
        f"{len(metrics['mu_values'])} values of μ_true (signal strength, 1 = Standard Model), nuisances drawn from "
        f"the challenge's priors (varied: {varied}). The profiled estimator fits all six nuisances; the "
        "statistical-only one fixes them at nominal, which is what ignoring systematics costs.",
        "Coverage score (the challenge's, higher is better) = −ln((w + 10⁻³) · f(c)): w = mean interval width "
        "|p84 − p16| over the PEs (units of μ), c = coverage, the fraction of PEs with p16 ≤ μ_true ≤ p84. "
        f"f = 1 while c lies in the band 0.6827 ± 2σ68, σ68 = √(0.6827 · 0.3173 / N); for N = {scored} that is "
        f"[{TARGET - 2 * sigma:.3f}, {TARGET + 2 * sigma:.3f}]. Below the band f = 1 + ((c − lo) / σ68)⁴, above "
        "it f = 1 + ((c − hi) / σ68)³, so under-coverage costs more than over-coverage.",
        "Two error conventions, with d = μ̂ − μ_true and δμ̂ = (p84 − p16) / 2: scores.json's rmse = mean "
        "√(d² + (d² − δμ̂²)²) and mae = mean (|d| + ||d| − δμ̂|) are the challenge's, which also charge a half-width "
        "that does not match the error; 'plain RMSE/MAE of mu_hat' in the tables are √(mean d²) and mean |d|. "
        f"Profiled here: rmse (scores.json) {profiled['codabench']['rmse']:.4g} vs plain RMSE "
        f"{profiled['rmse_mu']:.4g}; mae (scores.json) {profiled['codabench']['mae']:.4g} vs plain MAE "
        f"{profiled['mae_mu']:.4g}.",
    ]
    if dropped:
        paragraphs.append(
            f"{dropped} of {n} PEs have no finite interval of positive width from one of the estimators; every "
            f"number and figure here uses the other {scored} (the run is {view.status}). Dropped PEs are not a "
            "random sample: fits fail more often at extreme nuisances."
        )
    return "\n\n".join(paragraphs)


def sections(view: RunView) -> list[ReportSection]:
    """What the numbers mean; coverage and width vs mu_true; pulls; templates with one PE; features."""
    metrics, outputs, items = view.metrics, view.outputs, view.items
    mu_true = np.asarray(items.mu_true)
    ok = scored(outputs)
    candidates = np.flatnonzero(ok) if ok.any() else np.arange(mu_true.size)
    example = int(candidates[np.argmin(np.abs(mu_true[candidates] - 1.0))])
    pool = view.data.pool
    pri, weights, passed = (np.asarray(a) for a in apply_nominal(pool.pri, pool.weights, pool.process))
    process = np.asarray(pool.process)
    rows = np.concatenate(
        [np.flatnonzero(passed & (process == p))[:FEATURE_SAMPLE_PER_PROCESS] for p in range(len(schema.PROCESSES))]
    )
    der = np.asarray(derived_features(jnp.asarray(pri[rows])))
    pulls = plots.pull_values(outputs, mu_true, ok)
    clipped = "; ".join(f"{label}: {k}" for label, k in plots.clipped_pulls(pulls).items())
    return [
        ReportSection("What the numbers mean", meaning(view)),
        ReportSection(
            "Coverage and width vs μ_true",
            "",
            figures=(
                Figure(
                    "coverage_vs_mu",
                    "Coverage of the 68.27% interval per μ_true; the grey band is 0.6827 ± 2σ68 for that μ_true's "
                    "number of PEs (the pooled score uses the band of all PEs).",
                    figure_png(
                        plots.per_mu(metrics, "coverage", "coverage of [p16, p84] (fraction of PEs)", band=True)
                    ),
                ),
                Figure(
                    "width_vs_mu",
                    "Mean interval width per μ_true, in units of μ.",
                    figure_png(plots.per_mu(metrics, "width", "mean interval width |p84 − p16| (units of μ)")),
                ),
            ),
        ),
        ReportSection(
            "Pulls",
            "",
            figures=(
                Figure(
                    "pulls",
                    f"Pull distribution of the {int(ok.sum())} scored PEs; a calibrated estimator follows N(0, 1). "
                    f"Pulls beyond ±{plots.PULL_RANGE:g} are drawn in the hatched edge bins ({clipped}).",
                    figure_png(plots.pulls(pulls)),
                ),
            ),
        ),
        ReportSection(
            "Classifier and templates",
            "",
            figures=(
                Figure(
                    "score_templates",
                    "Left: nominal templates per score bin, stacked with the signal on top (log scale), and one "
                    "pseudo-experiment with Poisson errors. Middle: the signal alone, as signal / background per bin "
                    "(it is ~0.1% of the events, invisible in the stack). Right: classifier training history.",
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
            f"Weighted, normalised distributions per process of the PE pool from {data_source(view)}, after the "
            "analysis cuts at nominal systematics.",
            figures=(
                Figure(
                    "features",
                    f"Feature distributions (up to {FEATURE_SAMPLE_PER_PROCESS:,} events per process).",
                    figure_png(plots.feature_distributions(pri[rows], der, weights[rows], process[rows])),
                ),
            ),
        ),
    ]
