"""Scoring of ``fair_universe-v0``: per-PE metrics, the challenge's coverage score, the summary table.

A PE is scored when both estimators returned a finite mu_hat and a finite interval of positive
width (``scored``). The others get NaN per-PE metrics, so the runner calls the run ``degraded``
(``Task.partial``) with their count, and every aggregate here leaves them out and says how many:
``n_dropped``. Dropping is not neutral (fits fail more often at extreme nuisances), hence the
status and the count in every table.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.kernels.coverage import bootstrap_coverage_score, codabench_scores, coverage_score, per_group_coverage
from jaxbench.report import Table

from .config import FairUniverseConfig
from .estimator import PEOutputs
from .plots import ESTIMATORS
from .schema import Conditions

FIT = ("mu_hat", "p16", "p84")


def scored(outputs: PEOutputs) -> np.ndarray:
    """(N,) bool: both estimators gave a finite mu_hat and a finite interval p16 < p84."""
    ok = np.ones(np.shape(outputs.profiled_mu_hat), bool)
    for name, _ in ESTIMATORS:
        mu_hat, p16, p84 = (np.asarray(getattr(outputs, f"{name}_{k}")) for k in ("mu_hat", "p16", "p84"))
        ok &= np.isfinite(mu_hat) & np.isfinite(p16) & np.isfinite(p84) & (p16 < p84)
    return ok


def per_sample_metrics(outputs: PEOutputs, items: Conditions, estimator: str = "profiled") -> dict[str, np.ndarray]:
    """Per PE: covered (0/1), interval width, |mu_hat - mu_true| and pull (mu_hat - mu) / half-width;
    NaN for a PE that is not ``scored``."""
    mu = np.asarray(items.mu_true)
    mu_hat, p16, p84 = (np.asarray(getattr(outputs, f"{estimator}_{k}")) for k in ("mu_hat", "p16", "p84"))
    ok = scored(outputs)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {
            "covered": ((p16 <= mu) & (mu <= p84)).astype(np.float32),
            "width": np.abs(p84 - p16),
            "abs_error": np.abs(mu_hat - mu),
            "pull": (mu_hat - mu) / (0.5 * (p84 - p16)),
        }
    return {name: np.where(ok, v, np.nan).astype(v.dtype) for name, v in values.items()}


def score(per_sample: dict, outputs: PEOutputs, items: Conditions, key: jax.Array, config: FairUniverseConfig) -> dict:
    """Coverage score of both estimators over the ``scored`` PEs: pooled, per mu_true, bootstrap error
    and the Codabench layout; ``n_dropped`` PEs left out (with none scored, all count, so NaN fails the run)."""
    mu_values = np.asarray(config.analysis.mu_values, np.float32)
    ok = scored(outputs)
    rows = ok if ok.any() else np.ones_like(ok)
    mu_true = jnp.asarray(np.asarray(items.mu_true)[rows])
    group = jnp.asarray(np.searchsorted(mu_values, np.asarray(items.mu_true)[rows]))
    metrics = {
        "n_pseudo_experiments": int(ok.size),
        "n_scored": int(ok.sum()),
        "n_dropped": int(ok.size - ok.sum()),
        "mu_values": mu_values.tolist(),
    }
    for name, _ in ESTIMATORS:
        mu_hat, p16, p84 = (jnp.asarray(np.asarray(getattr(outputs, f"{name}_{k}"))[rows]) for k in FIT)
        pooled = coverage_score(mu_true, p16, p84)
        boot = bootstrap_coverage_score(key, mu_true, p16, p84, num_resamples=config.analysis.n_bootstrap)
        pulls = np.asarray((mu_hat - mu_true) / (0.5 * (p84 - p16)))
        metrics[name] = {
            "quantiles_score": float(pooled.score),
            "quantiles_score_bootstrap_std": float(jnp.std(boot.score, ddof=1)),
            "coverage": float(pooled.coverage),
            "interval": float(pooled.width),
            "penalty": float(pooled.penalty),
            "rmse_mu": float(jnp.sqrt(jnp.mean((mu_hat - mu_true) ** 2))),
            "mae_mu": float(jnp.mean(jnp.abs(mu_hat - mu_true))),
            "mean_pull": float(np.mean(pulls)),
            "std_pull": float(np.std(pulls)),
            "converged_fraction": float(np.mean(np.asarray(getattr(outputs, f"{name}_converged"))[rows])),
            "per_mu": {
                k: np.asarray(v).tolist()
                for k, v in per_group_coverage(mu_true, p16, p84, group, len(mu_values))._asdict().items()
            },
            "codabench": codabench_scores(mu_true, mu_hat, p16, p84),
        }
    return metrics


def interval_metrics(outputs: PEOutputs, mu_true: np.ndarray) -> dict[str, float]:
    """Coverage score, coverage, mean width, mean |mu_hat - mu| and mean pull of the profiled intervals
    of the ``scored`` PEs, and the fraction dropped (studies)."""
    ok = scored(outputs)
    rows = ok if ok.any() else np.ones_like(ok)
    mu_hat, p16, p84 = (np.asarray(getattr(outputs, f"profiled_{k}"))[rows] for k in FIT)
    mu_true = np.asarray(mu_true)[rows]
    s = coverage_score(jnp.asarray(mu_true), jnp.asarray(p16), jnp.asarray(p84))
    error = mu_hat - mu_true
    return {
        "quantiles_score": float(s.score),
        "coverage": float(s.coverage),
        "width": float(s.width),
        "mae_mu": float(np.mean(np.abs(error))),
        "mean_pull": float(np.mean(error / (0.5 * (p84 - p16)))),
        "dropped_fraction": float(1.0 - ok.mean()),
    }


SUMMARY_ROWS = {  # key in metrics[estimator] (a "codabench." prefix: in its scores.json layout) -> label
    "quantiles_score": "coverage score -ln((w + 1e-3) f) (higher is better)",
    "quantiles_score_bootstrap_std": "  bootstrap std of the score",
    "coverage": "coverage (target 0.6827)",
    "interval": "mean interval width w = mean |p84 - p16|",
    "penalty": "coverage penalty f (1 inside 0.6827 +- 2 sigma68)",
    "codabench.rmse": "rmse of scores.json (challenge): mean sqrt(d² + (d² − δμ̂²)²)",
    "codabench.mae": "mae of scores.json (challenge): mean |d| + ||d| − δμ̂|",
    "rmse_mu": "plain RMSE of mu_hat: sqrt(mean d²)",
    "mae_mu": "plain MAE of mu_hat: mean |d|",
    "mean_pull": "mean pull (mu_hat - mu) / half-width",
    "std_pull": "std of pulls",
    "converged_fraction": "fits converged",
}


def summary(metrics: dict) -> Table:
    """Both estimators' scores side by side, each row saying which definition it is."""

    def value(estimator: str, key: str) -> float:
        part = metrics[estimator]
        for name in key.split("."):
            part = part[name]
        return part

    n = metrics["n_pseudo_experiments"]
    dropped = metrics.get("n_dropped", 0)
    title = f"Scores over {n - dropped} pseudo-experiments" + (
        f" ({dropped} of {n} dropped: no finite interval)" if dropped else ""
    )
    title += "; d = μ̂ − μ_true, δμ̂ = (p84 − p16) / 2"
    return Table(
        title,
        ("metric", *(label for _, label in ESTIMATORS)),
        tuple((text, *(value(e, k) for e, _ in ESTIMATORS)) for k, text in SUMMARY_ROWS.items()),
    )
