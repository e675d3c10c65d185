"""Configurations of ``fair_universe-v0`` (importable without JAX, for the registry)."""

from jaxbench.tasks.fair_universe.schema import NUISANCES

DEFAULT_CONFIG = {
    # Challenge phase 1: 10 values of mu_true x 100 PEs, all six systematics.
    "mu_values": (0.1, 0.422, 0.744, 1.067, 1.389, 1.711, 2.033, 2.356, 2.678, 3.0),
    "n_pe_per_mu": 100,
    "systematics": NUISANCES,  # nuisances that vary per PE (the others stay nominal)
    # PE pool per process (htautau, ztautau, ttbar, diboson). Z->tautau needs many events: a pool
    # event of weight w that migrates across a bin edge under tes/jes moves w expected events, and
    # the templates can follow such steps only when w is small (docs/tasks/fair_universe.md).
    "pool_events": (50_000, 600_000, 100_000, 30_000),
    "train_events": (100_000, 100_000, 60_000, 40_000),  # classifier training pool per process
    "hidden": (64, 64),
    "epochs": 12,
    "batch_size": 1024,
    "learning_rate": 2e-3,
    "n_bins": 16,
    "chunk_size": 32,  # PEs per checkpointed chunk
    "n_bootstrap": 500,
    # Structural-interpretation studies (jaxbench run fair_universe-v0 --study NAME|all).
    "study_pe_per_mu": 10,  # PEs per mu value of every study evaluation (sample efficiency, OOD, rotation)
    "efficiency_fractions": (0.03, 0.1, 0.3, 1.0),  # training-set sizes, fractions of the training events
    "efficiency_seeds": 3,
    "ood_sigmas": (-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0),  # nuisance shifts, prior sigmas
    "trust_coverage_min": 0.6,  # the trusted range keeps the coverage at or above this
    "rotation_angles": 8,  # azimuthal rotations of the PE pool over [0, 2 pi)
    "breakdown_bins": 5,  # quantile bins of each nuisance in the per-PE breakdown
    "stability_conditions": 40,
    "stability_keys": 8,
}
QUICK_CONFIG = {
    "n_pe_per_mu": 30,
    "pool_events": (20_000, 200_000, 40_000, 10_000),
    "train_events": (40_000, 40_000, 25_000, 15_000),
    "hidden": (32, 32),
    "epochs": 8,
    "n_bins": 12,
    "n_bootstrap": 200,
    "study_pe_per_mu": 4,
    "efficiency_fractions": (0.1, 0.3, 1.0),
    "efficiency_seeds": 2,
    "ood_sigmas": (-4.0, -2.0, 0.0, 2.0, 4.0),
    "rotation_angles": 4,
    "stability_conditions": 20,
    "stability_keys": 4,
}
# Structural-interpretation studies this task supports (adapters in studies.py).
STUDIES: tuple[str, ...] = ("sample_efficiency", "rotation_scan", "feature_ood", "breakdown", "correlation", "stability")
