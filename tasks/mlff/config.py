"""Typed configuration, presets, criteria and datacard of ``mlff_aspirin-v0`` (no JAX imports)."""

from __future__ import annotations

import dataclasses

from jaxbench.config import check, override
from jaxbench.task import Criterion

from .geometries import GEOMETRIES
from .settings import (
    DynamicsConfig,
    MDConfig,
    NequipConfig,
    SoapConfig,
    TrainSettings,
    check_number,
    generator_datacard,
)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The trajectory (generated GFN2-xTB frames, or rMD17 via --data) and its train/test split."""

    molecule: str = "aspirin"  # a shipped starting geometry (the rMD17 file name too)
    n_frames: int = 4000  # saved frames of the generated trajectory
    split: str = "temporal"  # temporal: test on the last test_fraction in time; published: rMD17 split k=1
    test_fraction: float = 0.1
    test_frames: int = 400  # evenly spaced frames of the test window that are evaluated
    train_frames: int = 1000  # random frames of the training pool for the main model
    check_units: bool = True  # the rMD17 loader's unit checks (data.load_rmd17): coordinates, energies, forces
    check_energy_units: bool = True  # its total-energy check alone (valence-only energies fail it)

    def __post_init__(self):
        check(
            self.molecule in GEOMETRIES,
            f"data.molecule={self.molecule!r} has no shipped starting geometry; choose one of {', '.join(GEOMETRIES)}.",
        )
        check(
            self.split in ("temporal", "published"),
            f"data.split must be one of ('temporal', 'published'), got {self.split!r}.",
        )
        check(
            0.0 < self.test_fraction < 0.5,  # also refuses NaN
            f"data.test_fraction must be a number in (0, 0.5), got {self.test_fraction}.",
        )
        for name in ("n_frames", "test_frames", "train_frames"):
            check(getattr(self, name) >= 1, f"data.{name} must be >= 1, got {getattr(self, name)}.")


@dataclasses.dataclass(frozen=True)
class StudiesConfig:
    """Structural-interpretation studies (``jaxbench run mlff_aspirin-v0 --study NAME|all``)."""

    efficiency_sizes: tuple[int, ...] = (200, 400, 600, 800, 1000, 15000, 50000)  # sizes beyond the pool: skipped
    efficiency_seeds: int = 2
    window_starts: tuple[float, ...] = (0.0, 0.15, 0.3, 0.45, 0.6)  # fractions of the whole trajectory
    window_widths: tuple[float, ...] = (0.3, 0.45, 0.6, 0.75, 0.9)
    window_frames: int = 200  # training frames per window, evenly spaced (equal sizes: one vmap per width)
    soap_frames: int = 50  # frames per window in the SOAP similarity (evenly spaced)
    trust_force_mae_factor: float = 1.5  # similarity: trusted while force MAE <= this x the best window's
    equivariance_trials: int = 8
    variant_sizes: tuple[int, ...] = (200, 1000)  # energy-only vs energy + force loss; beyond the pool: skipped
    variant_seeds: int = 2

    def __post_init__(self):
        for name in ("efficiency_seeds", "window_frames", "soap_frames", "equivariance_trials", "variant_seeds"):
            check(getattr(self, name) >= 1, f"studies.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("efficiency_sizes", "variant_sizes"):
            check(
                min(getattr(self, name), default=0) >= 1, f"studies.{name} needs sizes >= 1, got {getattr(self, name)}."
            )
        check(
            bool(self.window_starts) and all(0.0 <= s < 1.0 for s in self.window_starts),
            f"studies.window_starts must be fractions of the trajectory in [0, 1), got {self.window_starts}.",
        )
        check(
            bool(self.window_widths) and all(0.0 < w <= 1.0 for w in self.window_widths),
            f"studies.window_widths must be fractions of the trajectory in (0, 1], got {self.window_widths}.",
        )
        check_number("studies.trust_force_mae_factor", self.trust_force_mae_factor, 1.0)


@dataclasses.dataclass(frozen=True)
class MLFFConfig:
    """The whole ``mlff_aspirin-v0`` configuration; ``chunk_size`` test frames per checkpointed chunk."""

    data: DataConfig = DataConfig()
    md: DynamicsConfig = DynamicsConfig(save_every=10)  # 5 fs between saved frames: still correlated
    model: NequipConfig = NequipConfig(l_max=1, channels=16, layers=3, cutoff=4.0, radial_hidden=32)
    training: TrainSettings = TrainSettings(steps=4000, checkpoint_every=200)
    soap: SoapConfig = SoapConfig(r_cut=5.0, n_max=6, l_max=4)
    studies: StudiesConfig = StudiesConfig()
    chunk_size: int = 64

    def __post_init__(self):
        check(self.chunk_size >= 1, f"chunk_size must be >= 1, got {self.chunk_size}.")
        batch = self.training.batch_size
        for key, frames in (
            ("data.train_frames", self.data.train_frames),
            ("studies.window_frames", self.studies.window_frames),
            ("studies.efficiency_sizes", min(self.studies.efficiency_sizes)),
            ("studies.variant_sizes", min(self.studies.variant_sizes)),
        ):
            check(
                frames >= batch,
                f"{key}={frames} is smaller than training.batch_size={batch} (frames per step, drawn without "
                f"replacement); lower training.batch_size or raise {key}.",
            )


DEFAULT = MLFFConfig()
# Preset tables, kept as tables (one setting per line would triple them).
# fmt: off
QUICK = override(DEFAULT, {  # minutes on 2 CPU cores
    "data.n_frames": 600, "data.test_frames": 60, "data.train_frames": 200, "md.save_every": 5,
    "md.equilibration_steps": 400, "model.channels": 8, "model.layers": 2, "model.radial_hidden": 16,
    "training.steps": 1000, "training.checkpoint_every": 250, "studies.efficiency_sizes": (10, 40, 160),
    "studies.window_starts": (0.0, 0.3, 0.6), "studies.window_widths": (0.3, 0.6), "studies.window_frames": 40,
    "studies.soap_frames": 20, "studies.equivariance_trials": 4, "studies.variant_sizes": (40, 160)})
TINY = override(QUICK, {  # tests and CI: ethanol (9 atoms), seconds
    "data.molecule": "ethanol", "data.n_frames": 240, "data.train_frames": 40, "data.test_frames": 16,
    # GFN2-xTB energies are valence-only: the loader's total-energy check would reject a saved trajectory.
    "data.check_energy_units": False, "md.save_every": 2, "md.equilibration_steps": 100, "training.steps": 60,
    "training.checkpoint_every": 30, "soap.n_max": 3, "soap.l_max": 2, "studies.efficiency_sizes": (10, 20, 100000),
    "studies.window_frames": 10, "studies.soap_frames": 6, "studies.equivariance_trials": 2,
    "studies.variant_sizes": (10, 20), "chunk_size": 8})

# fmt: on
STUDIES = (
    "sample_efficiency",
    "time_window_grid",
    "similarity",
    "error_tracing",
    "variants",
    "equivariance",
    "breakdown",
    "correlation",
)
CRITERIA = (
    Criterion(
        "force_mae_mev_per_a",
        False,
        None,
        "mean absolute force-component error on the test window (meV/Å); "
        "NequIP (l=3) reaches ~8 meV/Å on rMD17 aspirin with 1000 random training frames",
    ),
    Criterion("energy_mae_mev", False, None, "mean absolute error of the molecule's energy per test frame (meV)"),
    Criterion(
        "energy_mae_mev_per_atom",
        False,
        None,
        "the energy MAE divided by the molecule's atom count (meV/atom), as the method's paper reports it "
        "(< 4 meV/atom for NequIP on rMD17 aspirin with 200 frames)",
    ),
)


def datacard(config: MLFFConfig) -> dict:
    """What the data are: source, generator, units and split."""
    generator = MDConfig(molecule=config.data.molecule, **dataclasses.asdict(config.md))
    return {
        "what": f"Time-ordered molecular-dynamics frames of {config.data.molecule} with energies and forces.",
        "source": "embedded GFN2-xTB (tblite) Langevin MD, cached on disk; or rMD17 npz via --data (revised MD17, "
        "PBE/def2-SVP, kcal/mol converted to eV)",
        "generator": generator_datacard(generator, config.data.n_frames),
        "units": "positions Å, energies eV, forces eV/Å; errors reported in meV and meV/Å",
        "split": "temporal: the last test_fraction of the trajectory is the test window; training frames come "
        "from the first part only; published: the rMD17 split k=1",
    }
