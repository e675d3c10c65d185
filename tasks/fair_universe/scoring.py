"""Scoring of ``fair_universe-v0``: per-PE metrics, the challenge's coverage score, the summary table."""

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


def per_sample_metrics(outputs: PEOutputs, items: Conditions, estimator: str = "profiled") -> dict[str, np.ndarray]:
    """Per PE: covered (0/1), interval width, |mu_hat - mu_true| and pull (mu_hat - mu) / half-width."""
    mu = np.asarray(items.mu_true)
    mu_hat, p16, p84 = (np.asarray(getattr(outputs, f"{estimator}_{k}")) for k in ("mu_hat", "p16", "p84"))
    return {
        "covered": ((p16 <= mu) & (mu <= p84)).astype(np.float32),
        "width": np.abs(p84 - p16),
        "abs_error": np.abs(mu_hat - mu),
        "pull": (mu_hat - mu) / (0.5 * (p84 - p16)),
    }


def score(per_sample: dict, outputs: PEOutputs, items: Conditions, key: jax.Array, config: FairUniverseConfig) -> dict:
    """Coverage score of both estimators: pooled, per mu_true, bootstrap error and the Codabench layout."""
    mu_values = np.asarray(config.analysis.mu_values, np.float32)
    mu_true = jnp.asarray(items.mu_true)
    group = jnp.asarray(np.searchsorted(mu_values, items.mu_true))
    metrics = {"n_pseudo_experiments": int(mu_true.shape[0]), "mu_values": mu_values.tolist()}
    for name in ("profiled", "stat_only"):
        mu_hat, p16, p84 = (jnp.asarray(getattr(outputs, f"{name}_{k}")) for k in ("mu_hat", "p16", "p84"))
        pooled = coverage_score(mu_true, p16, p84)
        boot = bootstrap_coverage_score(key, mu_true, p16, p84, num_resamples=config.analysis.n_bootstrap)
        pulls = per_sample_metrics(outputs, items, name)["pull"]
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
            "converged_fraction": float(np.mean(getattr(outputs, f"{name}_converged"))),
            "per_mu": {
                k: np.asarray(v).tolist()
                for k, v in per_group_coverage(mu_true, p16, p84, group, len(mu_values))._asdict().items()
            },
            "codabench": codabench_scores(mu_true, mu_hat, p16, p84),
        }
    return metrics


def interval_metrics(outputs: PEOutputs, mu_true: np.ndarray) -> dict[str, float]:
    """Coverage score, coverage, mean width, mean |mu_hat - mu| and mean pull of the profiled intervals."""
    p16, p84, mu_hat = (np.asarray(getattr(outputs, f"profiled_{k}")) for k in ("p16", "p84", "mu_hat"))
    s = coverage_score(jnp.asarray(mu_true), jnp.asarray(p16), jnp.asarray(p84))
    error = mu_hat - np.asarray(mu_true)
    return {
        "quantiles_score": float(s.score),
        "coverage": float(s.coverage),
        "width": float(s.width),
        "mae_mu": float(np.mean(np.abs(error))),
        "mean_pull": float(np.mean(error / (0.5 * (p84 - p16)))),
    }


def summary(metrics: dict) -> Table:
    """Both estimators' scores side by side."""
    labels = {
        "quantiles_score": "coverage score (higher is better)",
        "quantiles_score_bootstrap_std": "  bootstrap std of the score",
        "coverage": "coverage (target 0.6827)",
        "interval": "mean interval width",
        "penalty": "coverage penalty f",
        "rmse_mu": "RMSE of mu_hat",
        "mae_mu": "MAE of mu_hat",
        "mean_pull": "mean pull",
        "std_pull": "std of pulls",
        "converged_fraction": "fits converged",
    }
    return Table(
        f"Scores over {metrics['n_pseudo_experiments']} pseudo-experiments",
        ("metric", *(label for _, label in ESTIMATORS)),
        tuple((text, *(metrics[e][k] for e, _ in ESTIMATORS)) for k, text in labels.items()),
    )
