"""Plots and tables of a ``fair_universe-v0`` run, rebuilt from the run directory's arrays."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jaxbench import records
from jaxbench.report import Figure, ReportSection, Table, figure_png, render_table_text
from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe.derived import derived_features
from jaxbench.tasks.fair_universe.systematics import apply_nominal

FEATURE_SAMPLE_PER_PROCESS = 20_000
ESTIMATORS = (("profiled", "profiled (6 nuisances)"), ("stat_only", "statistical only"))
COLORS = {"htautau": "#d62728", "ztautau": "#1f77b4", "ttbar": "#2ca02c", "diboson": "#9467bd"}


def write_feature_sample(run, pool: schema.EventPool) -> None:
    """Stores up to 20k events per process at nominal systematics, after cuts, for the plots."""
    pri, weights, passed = apply_nominal(pool.pri, pool.weights, pool.process)
    pri, weights, passed, process = (np.asarray(a) for a in (pri, weights, passed, pool.process))
    rows = np.concatenate([np.flatnonzero(passed & (process == p))[:FEATURE_SAMPLE_PER_PROCESS]
                           for p in range(len(schema.PROCESSES))])
    der = np.asarray(derived_features(jnp.asarray(pri[rows])))
    records.write_arrays(run.path("arrays", "feature_sample"),
                         {"pri": pri[rows], "der": der, "weights": weights[rows], "process": process[rows]})


def score_table(metrics: dict) -> Table:
    rows = []
    for key, label in (
        ("quantiles_score", "coverage score (higher is better)"),
        ("quantiles_score_bootstrap_std", "  bootstrap std of the score"),
        ("coverage", "coverage (target 0.6827)"),
        ("interval", "mean interval width"),
        ("penalty", "coverage penalty f"),
        ("rmse_mu", "RMSE of mu_hat"),
        ("mae_mu", "MAE of mu_hat"),
        ("mean_pull", "mean pull"),
        ("std_pull", "std of pulls"),
        ("converged_fraction", "fits converged"),
    ):
        rows.append((label, *(metrics[name][key] for name, _ in ESTIMATORS)))
    return Table(f"Scores over {metrics['n_pseudo_experiments']} pseudo-experiments",
                 ("metric", *(label for _, label in ESTIMATORS)), tuple(rows))


def finish(run, metrics: dict) -> None:
    """Writes summary.txt (the runner writes report.html once the run and its studies are done)."""
    table = score_table(metrics)
    records.atomic_write_text(run.path("summary.txt"), render_table_text(table))


def sections(run_dir: str | Path, metrics: dict | None = None) -> list[ReportSection]:
    """All report sections of a run directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics = metrics if metrics is not None else records.read_json(run_dir / "metrics.json")
    pe = records.read_arrays(run_dir / "arrays" / "pseudo_experiments")
    templates = records.read_arrays(run_dir / "arrays" / "templates")
    history = records.read_arrays(run_dir / "arrays" / "classifier_history")
    sample = records.read_arrays(run_dir / "arrays" / "feature_sample")
    mu_values = np.asarray(metrics["mu_values"])

    # Coverage and width vs mu_true.
    fig_cov, ax = plt.subplots(figsize=(6, 4))
    for name, label in ESTIMATORS:
        ax.plot(mu_values, metrics[name]["per_mu"]["coverage"], "o-", label=label)
    counts = np.asarray(metrics["profiled"]["per_mu"]["n"], float)
    sigma = np.sqrt(0.6827 * 0.3173 / np.maximum(counts, 1))
    ax.fill_between(mu_values, 0.6827 - 2 * sigma, 0.6827 + 2 * sigma, color="grey", alpha=0.25, label="0.6827 ± 2σ68")
    ax.axhline(0.6827, color="grey", lw=1)
    ax.set(xlabel="μ_true", ylabel="coverage of [p16, p84]", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig_width, ax = plt.subplots(figsize=(6, 4))
    for name, label in ESTIMATORS:
        ax.plot(mu_values, metrics[name]["per_mu"]["width"], "o-", label=label)
    ax.set(xlabel="μ_true", ylabel="mean interval width |p84 − p16|")
    ax.legend(fontsize=8)

    # Pulls.
    fig_pull, ax = plt.subplots(figsize=(6, 4))
    grid = np.linspace(-5, 5, 201)
    for name, label in ESTIMATORS:
        pull = (pe[f"{name}_mu_hat"] - pe["mu_true"]) / (0.5 * (pe[f"{name}_p84"] - pe[f"{name}_p16"]))
        ax.hist(np.clip(pull, -5, 5), bins=40, range=(-5, 5), density=True, histtype="step", lw=1.5, label=label)
    ax.plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set(xlabel="pull (μ̂ − μ_true) / half-width", ylabel="density")
    ax.legend(fontsize=8)

    # Score templates with one pseudo-experiment.
    edges, nominal = templates["edges"], templates["nominal"]
    centers = np.arange(nominal.shape[1])
    fig_tpl, (ax, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    bottom = np.zeros(nominal.shape[1])
    for p in (1, 2, 3, 0):
        name = schema.PROCESSES[p]
        ax.bar(centers, nominal[p], bottom=bottom, width=1.0, color=COLORS[name], alpha=0.8, label=name)
        bottom = bottom + nominal[p]
    example = int(np.argmin(np.abs(pe["mu_true"] - 1.0)))
    ax.errorbar(centers, pe["hist"][example], yerr=np.sqrt(pe["hist"][example]), fmt="k.",
                label=f"one PE (μ_true={pe['mu_true'][example]:.2f})")
    ax.set_yscale("log")
    ax.set_xticks(centers[::2], [f"{e:.2f}" for e in edges[:-1:2]], fontsize=7)
    ax.set(xlabel="classifier-score bin (lower edge; equal expected signal per bin)", ylabel="expected events / PE (μ=1)")
    ax.legend(fontsize=7)
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    ax_loss.plot(epochs, history["train_loss"], label="train")
    ax_loss.plot(epochs, history["valid_loss"], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="class-balanced BCE")
    ax_loss.legend(fontsize=8)

    # Generator feature distributions.
    pri, der, weights, process = sample["pri"], sample["der"], sample["weights"], sample["process"]
    panels = (
        ("DER_mass_vis [GeV]", der[:, schema.DER["DER_mass_vis"]], (0, 200)),
        ("PRI_met [GeV]", pri[:, schema.PRI["PRI_met"]], (0, 150)),
        ("DER_mass_transverse_met_lep [GeV]", der[:, schema.DER["DER_mass_transverse_met_lep"]], (0, 150)),
        ("PRI_had_pt [GeV]", pri[:, schema.PRI["PRI_had_pt"]], (20, 150)),
        ("PRI_n_jets", pri[:, schema.PRI["PRI_n_jets"]], (-0.5, 5.5)),
        ("DER_deltar_had_lep", der[:, schema.DER["DER_deltar_had_lep"]], (0, 5)),
    )
    fig_feat, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for axis, (label, values, value_range) in zip(axes.ravel(), panels):
        bins = 6 if label == "PRI_n_jets" else 40
        for p, name in enumerate(schema.PROCESSES):
            m = process == p
            if np.any(m):
                axis.hist(values[m], bins=bins, range=value_range, weights=weights[m], density=True,
                          histtype="step", lw=1.3, color=COLORS[name], label=name)
        axis.set(xlabel=label, ylabel="normalised")
    axes[0, 0].legend(fontsize=7)
    fig_feat.tight_layout()

    n = metrics["n_pseudo_experiments"]
    return [
        ReportSection(
            "Scores",
            f"{n} pseudo-experiments at {len(mu_values)} values of μ_true, nuisances drawn from the "
            "challenge's priors. The profiled estimator fits all six nuisances; the statistical-only "
            "one fixes them at nominal, which is what ignoring systematics costs.",
            tables=(score_table(metrics),),
        ),
        ReportSection("Coverage and width vs μ_true", "", figures=(
            Figure("coverage_vs_mu", "Coverage of the 68.27% interval per μ_true; the band is ±2σ68.", figure_png(fig_cov)),
            Figure("width_vs_mu", "Mean interval width per μ_true.", figure_png(fig_width)),
        )),
        ReportSection("Pulls", "", figures=(
            Figure("pulls", "Pull distribution; a calibrated estimator follows N(0, 1).", figure_png(fig_pull)),
        )),
        ReportSection("Classifier and templates", "", figures=(
            Figure("score_templates", "Left: nominal templates (stacked) per score bin and one "
                   "pseudo-experiment. Right: classifier training history.", figure_png(fig_tpl)),
        )),
        ReportSection("Generated events", "Weighted, normalised distributions per process after the "
                      "analysis cuts at nominal systematics.", figures=(
            Figure("features", "Feature distributions of the embedded generator.", figure_png(fig_feat)),
        )),
    ]
