"""Typed configuration, presets, criteria and datacard of ``fair_universe-v0`` (no JAX imports)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from jaxbench.config import check, override
from jaxbench.task import Criterion

from .schema import NUISANCES, PROCESSES


def _at_least(part: object, prefix: str, minimum: int, names: tuple[str, ...]) -> None:
    """Each integer field ``names`` of ``part`` is >= ``minimum`` (a ConfigError naming the key)."""
    for name in names:
        key, value = f"{prefix}{name}", getattr(part, name)
        check(value >= minimum, f"{key} must be >= {minimum}, got {value}; e.g. --set {key}={max(minimum, 1)}.")


def _values(values: tuple[float, ...], key: str, ok: Callable[[float], bool], what: str, example: str) -> None:
    """``values`` non-empty, finite and each ``ok`` (a ConfigError naming the key and ``what`` they must be)."""
    check(
        len(values) > 0 and all(math.isfinite(v) and ok(v) for v in values),
        f"{key} needs one or more finite values {what}, got {values}; e.g. --set {key}={example}.",
    )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Events per process (htautau, ztautau, ttbar, diboson). Z->tautau needs many: an event of weight
    w migrating across a bin edge under tes/jes moves w events, which templates follow only for small w."""

    pool_events: tuple[int, ...] = (50_000, 600_000, 100_000, 30_000)  # PE pool
    train_events: tuple[int, ...] = (100_000, 100_000, 60_000, 40_000)  # classifier training pool

    def __post_init__(self):
        for name in ("pool_events", "train_events"):
            value = getattr(self, name)
            check(
                len(value) == len(PROCESSES) and min(value) >= 100,
                f"data.{name} needs {len(PROCESSES)} counts >= 100 (one per process {PROCESSES}), got {value}.",
            )


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """The signal-vs-background MLP on the 28 features and its training."""

    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 12
    batch_size: int = 1024
    learning_rate: float = 2e-3

    def __post_init__(self):
        _values(self.hidden, "classifier.hidden", lambda w: w >= 1, "(layer widths >= 1)", "64,64")
        _at_least(self, "classifier.", 1, ("epochs", "batch_size"))
        check(
            math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1,
            f"classifier.learning_rate must be finite and in (0, 1], got {self.learning_rate}; "
            "e.g. --set classifier.learning_rate=2e-3.",
        )


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Pseudo-experiments (challenge phase 1: 10 mu values x 100 PEs) and the binned fit."""

    mu_values: tuple[float, ...] = (0.1, 0.422, 0.744, 1.067, 1.389, 1.711, 2.033, 2.356, 2.678, 3.0)
    n_pe_per_mu: int = 100
    systematics: tuple[str, ...] = NUISANCES  # nuisances that vary per PE (the others stay nominal)
    n_bins: int = 16
    n_bootstrap: int = 500

    def __post_init__(self):
        unknown = [s for s in self.systematics if s not in NUISANCES]
        check(not unknown, f"analysis.systematics: unknown {unknown}; choose from {', '.join(NUISANCES)}.")
        _values(self.mu_values, "analysis.mu_values", lambda m: m >= 0, ">= 0", "0.5,1,2")
        check(  # the score groups PEs by searchsorted into mu_values
            all(a < b for a, b in zip(self.mu_values, self.mu_values[1:])),
            f"analysis.mu_values must increase without repeats, got {self.mu_values}; "
            "e.g. --set analysis.mu_values=0.5,1,2.",
        )
        _at_least(self, "analysis.", 1, ("n_pe_per_mu", "n_bins"))
        _at_least(self, "analysis.", 2, ("n_bootstrap",))  # the score's bootstrap std needs two resamples


OOD_TRENDS = ("linear", "quadratic", "monotone")  # jaxbench.studies.ranges.TRENDS (that module imports numpy)


@dataclasses.dataclass(frozen=True)
class StudiesConfig:
    """Structural-interpretation studies (``jaxbench run fair_universe-v0 --study NAME|all``)."""

    study_pe_per_mu: int = 10  # PEs per mu value of each study evaluation
    efficiency_fractions: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)  # of the training events
    efficiency_seeds: int = 3
    ood_sigmas: tuple[float, ...] = (-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)  # prior sigmas
    trust_coverage_min: float = 0.6  # the trusted range keeps the coverage at or above this
    ood_trend: str = "monotone"  # trend of coverage vs |sigma| for the fitted limits (ranges.TRENDS)
    map_sigmas: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)  # tes x jes grid of the 2-D map (prior sigmas)
    rotation_angles: int = 8  # azimuthal rotations of the PE pool over [0, 2 pi)
    variant_fractions: tuple[float, ...] = (0.1, 0.3, 1.0)  # azimuth variant: training fractions
    variant_seeds: int = 2
    variant_angle: float = math.pi / 2  # rad: the PE pool's rotation for the azimuth variant
    attribution_events: int = 20_000  # held-out PE-pool events (half signal) of the permutation importance
    attribution_repeats: int = 5  # permutations per feature
    breakdown_bins: int = 5
    stability_conditions: int = 40
    stability_keys: int = 8

    def __post_init__(self):
        names = ("study_pe_per_mu", "efficiency_seeds", "rotation_angles", "breakdown_bins", "stability_conditions")
        _at_least(self, "studies.", 1, names + ("variant_seeds", "attribution_repeats"))
        _at_least(self, "studies.", 2, ("attribution_events",))  # a standard error needs two events
        _at_least(self, "studies.", 2, ("stability_keys",))  # a spread over keys needs two
        _values(self.efficiency_fractions, "studies.efficiency_fractions", lambda f: 0 < f <= 1, "in (0, 1]", "0.1,1")
        _values(self.ood_sigmas, "studies.ood_sigmas", lambda s: True, "(prior sigmas)", "-2,0,2")
        _values(self.variant_fractions, "studies.variant_fractions", lambda f: 0 < f <= 1, "in (0, 1]", "0.3,1")
        check(
            self.ood_trend in OOD_TRENDS,
            f"studies.ood_trend must be one of {', '.join(OOD_TRENDS)}, got {self.ood_trend!r}; "
            "e.g. --set studies.ood_trend=monotone.",
        )
        check(
            len(self.map_sigmas) > 0 and all(math.isfinite(s) for s in self.map_sigmas) and 0.0 in self.map_sigmas,
            f"studies.map_sigmas needs finite prior sigmas including 0 (the map's centre), got {self.map_sigmas}; "
            "e.g. --set studies.map_sigmas=-2,0,2.",
        )
        check(
            math.isfinite(self.variant_angle),
            f"studies.variant_angle must be finite (radians), got {self.variant_angle}; "
            "e.g. --set studies.variant_angle=1.57.",
        )
        check(
            math.isfinite(self.trust_coverage_min) and 0 <= self.trust_coverage_min <= 1,
            f"studies.trust_coverage_min must be in [0, 1], got {self.trust_coverage_min}; "
            "e.g. --set studies.trust_coverage_min=0.6.",
        )


@dataclasses.dataclass(frozen=True)
class FairUniverseConfig:
    """The whole ``fair_universe-v0`` configuration; ``chunk_size`` PEs per checkpointed chunk."""

    data: DataConfig = DataConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    studies: StudiesConfig = StudiesConfig()
    chunk_size: int = 32

    def __post_init__(self):
        _at_least(self, "", 1, ("chunk_size",))


DEFAULT = FairUniverseConfig()
# Preset tables, kept as tables (one setting per line would triple them).
# fmt: off
QUICK = override(DEFAULT, dict(
    pool_events=(20_000, 200_000, 40_000, 10_000), train_events=(40_000, 40_000, 25_000, 15_000), hidden=(32, 32),
    epochs=8, n_pe_per_mu=30, n_bins=12, n_bootstrap=200, study_pe_per_mu=4, efficiency_fractions=(0.1, 0.3, 1.0),
    efficiency_seeds=2, ood_sigmas=(-4.0, -2.0, 0.0, 2.0, 4.0), rotation_angles=4, stability_conditions=20,
    stability_keys=4, variant_fractions=(0.3, 1.0), attribution_events=10_000, attribution_repeats=3))
TINY = override(QUICK, dict(  # tests and CI: seconds
    pool_events=(4000, 30000, 8000, 4000), train_events=(4000, 4000, 3000, 2000), hidden=(16, 16), epochs=2,
    mu_values=(0.5, 2.0), n_pe_per_mu=12, n_bins=8, n_bootstrap=20, study_pe_per_mu=2, efficiency_fractions=(0.3, 1.0),
    efficiency_seeds=1, ood_sigmas=(-3.0, 0.0, 3.0), rotation_angles=2, stability_conditions=4, stability_keys=2,
    map_sigmas=(-3.0, 0.0, 3.0), variant_fractions=(1.0,), variant_seeds=1, attribution_events=2000,
    attribution_repeats=2, chunk_size=8))
# fmt: on
STUDIES = (
    "sample_efficiency",
    "rotation_scan",
    "feature_ood",
    "variants",
    "attribution",
    "breakdown",
    "correlation",
    "stability",
)

CRITERIA = (
    Criterion("profiled.quantiles_score", True, None, "coverage score -ln((mean width + 1e-3) * f(coverage))"),
    Criterion(
        "profiled.coverage",
        True,
        None,
        "fraction of PEs whose [p16, p84] contains mu_true; calibrated "
        "within 0.6827 +- 2 sigma68 (outside, the score's penalty f grows)",
    ),
    Criterion("profiled.interval", False, None, "mean interval width |p84 - p16|"),
)


def datacard(config: FairUniverseConfig) -> dict[str, str]:
    """What the data are: processes, yields, features, systematics and the reference estimator."""
    return {
        "what": "H->tautau (lepton + hadronic tau) and the backgrounds Z->tautau, ttbar, diboson, as in the FAIR "
        "Universe HiggsML Uncertainty Challenge; from the embedded JAX event generator or the official parquet",
        "yields": "per PE at 10 fb^-1 after cuts: 1015*mu signal, 1,002,395 Z->tautau, 44,192 ttbar, 3,783 diboson",
        "features": "16 PRI (GeV, radians) + 12 DER; missing jets = -25",
        "systematics": "tes, jes, soft_met (shape); ttbar_scale, diboson_scale, bkg_scale (normalisation)",
        "estimator": "MLP classifier -> signal-quantile score bins -> binned Poisson profile likelihood, Gaussian "
        f"constraints on six nuisances; {len(config.analysis.mu_values)} mu x {config.analysis.n_pe_per_mu} PEs",
    }
