"""Typed config, presets, criteria and datacard of ``oscillator-v0`` (importable without JAX)."""

import dataclasses
import math

from jaxbench.config import check
from jaxbench.task import Criterion


@dataclasses.dataclass(frozen=True)
class OscillatorConfig:
    """Oscillators uniform in the ranges below, sampled at ``n_times`` times in [0, duration_s] s."""

    n_train: int = 256  # the first n_train oscillators train, the others test
    n_test: int = 512
    n_times: int = 128
    duration_s: float = 10.0
    omega0_rad_s: tuple[float, float] = (1.0, 6.0)  # natural frequency
    zeta: tuple[float, float] = (0.01, 0.2)  # damping ratio (underdamped)
    amplitude: tuple[float, float] = (0.5, 2.0)  # units of x; the phase is uniform in [-pi, pi)
    noise_sigma: float = 0.1  # Gaussian measurement noise, units of x, drawn anew per evaluation key

    def __post_init__(self):
        (w_low, w_high), (z_low, z_high), (a_low, a_high) = self.omega0_rad_s, self.zeta, self.amplitude
        check(
            0 < w_low <= w_high and 0 <= z_low <= z_high < 1 and 0 < a_low <= a_high and self.noise_sigma >= 0,
            "omega0_rad_s, zeta, amplitude must be ranges 0 < low <= high (zeta < 1), noise_sigma >= 0.",
        )
        check(
            w_high < math.pi * (self.n_times - 1) / self.duration_s / 2 and min(self.n_train, self.n_test) > 0,
            "need n_train, n_test > 0 and 4 samples per period of omega0_rad_s: raise n_times or lower duration_s.",
        )


DEFAULT = OscillatorConfig()
QUICK = dataclasses.replace(DEFAULT, n_train=64, n_test=128)
TINY = dataclasses.replace(DEFAULT, n_train=16, n_test=32, n_times=64)  # tests and CI: seconds
STUDIES = ("breakdown", "correlation", "stability")
CRITERIA = (
    Criterion("omega0_rel_error_median", False, 0.01, "median |omega0_fit - omega0| / omega0, test set"),
    Criterion("zeta_abs_error_median", False, 0.01, "median |zeta_fit - zeta| of the test set"),
    Criterion("omega0_recovered_fraction", True, 0.75, "fraction of the test set with omega0 within 1%"),
)


def datacard(config: OscillatorConfig) -> dict[str, str]:
    """What the data are and how the reference estimator works."""
    return {
        "what": "x(t) = A exp(-zeta omega0 t) cos(omega_d t + phi), omega_d = omega0 sqrt(1 - zeta^2), plus noise",
        "data": f"{config.n_train} train + {config.n_test} test oscillators of {config.n_times} samples, or --data",
        "estimator": "DFT-peak start, then Levenberg-Marquardt least squares of (A, zeta, omega0, phi)",
    }
