"""pysteps' own nowcasting baselines: persistence, semi-Lagrangian extrapolation, S-PROG and STEPS.

Every event is forecast from its inputs alone (numpy, pysteps 1.21.x), the way pysteps' examples run them:
- motion: ``config.motion`` ("lucaskanade" or "vet") on the last ``MOTION_FRAMES`` inputs in dBR (the transform
  below), one field per event shared by extrapolation, S-PROG and STEPS; non-finite vectors read 0;
- extrapolation: the last input (mm/h) moved by that field, backward semi-Lagrangian; rain that would come from
  beyond the domain is NaN in pysteps and 0 here (no rain flows in from beyond the radar);
- S-PROG and STEPS: rain in dBR (``dB_transform``, threshold ``RAIN_THRESHOLD_MMH``, no-rain ``ZEROVALUE_DB``),
  ``precip_thr`` the threshold in dB, ``n_cascade_levels``, ``kmperpixel`` and ``timestep`` from the config,
  back-transformed to mm/h (below the threshold: 0); STEPS' headline is its ensemble mean.

Dry or near-dry events break S-PROG / STEPS (too little rain for the cascade statistics: pysteps raises or returns
NaN). There the event's extrapolation stands in (for a dry event: zeros, like persistence), ``Forecast.fallback`` is
True and a :class:`BaselineFallbackWarning` names the reason; no NaN ever leaves this module.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import multiprocessing
import os
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.errors import ConfigError

from .config import BASELINES, BaselineConfig, DataConfig

#: Rain rate (mm/h) below which a pixel is dry for the dB transform and the cascade statistics.
RAIN_THRESHOLD_MMH = 0.1
#: dBR value of dry pixels (pysteps' examples: -15 dBR, 5 dB below the 0.1 mm/h threshold).
ZEROVALUE_DB = -15.0
#: Inputs the motion is estimated from (the last ones), and S-PROG / STEPS' AR(2) inputs.
MOTION_FRAMES = 3


class BaselineFallbackWarning(UserWarning):
    """S-PROG or STEPS could not run on an event; its extrapolation stands in."""


class Forecast(NamedTuple):
    """One baseline's forecast of one event (or, from :func:`run_baselines`, of E events stacked first).

    frames: (n_targets, H, W) rain rate, mm/h (STEPS: the ensemble mean).
    motion: (2, H, W) the motion field used, px/step, (u along columns, v along rows); persistence: zeros.
    members: (K, n_targets, H, W) STEPS' ensemble members, mm/h; None for the deterministic baselines.
    fallback: True where S-PROG / STEPS could not run and the extrapolation forecast stands in.
    """

    frames: np.ndarray
    motion: np.ndarray
    members: np.ndarray | None = None
    fallback: np.ndarray | bool = False


def key_to_seed(key: jax.Array) -> int:
    """A pysteps seed in [0, 2^31 - 1) drawn from ``key``."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


def to_dbr(rain: np.ndarray) -> np.ndarray:
    """Rain (mm/h, any shape) in dBR as pysteps' examples use it: 10 log10(R), ``ZEROVALUE_DB`` below 0.1 mm/h."""
    from pysteps.utils import transformation

    dbr, _ = transformation.dB_transform(
        np.array(rain, np.float64), threshold=RAIN_THRESHOLD_MMH, zerovalue=ZEROVALUE_DB
    )
    return dbr


def from_dbr(dbr: np.ndarray) -> np.ndarray:
    """dBR back to mm/h (any shape): 10^(dBR / 10), 0 below the threshold and where not finite."""
    from pysteps.utils import transformation

    rain, _ = transformation.dB_transform(
        np.array(dbr, np.float64), threshold=10.0 * np.log10(RAIN_THRESHOLD_MMH), inverse=True
    )
    return np.nan_to_num(rain, nan=0.0, posinf=0.0, neginf=0.0)


def estimate_motion(inputs: np.ndarray, method: str) -> np.ndarray:
    """pysteps' ``method`` motion (2, H, W) px/step from the last ``MOTION_FRAMES`` of ``inputs`` (T, H, W) mm/h."""
    from pysteps import motion

    dbr = to_dbr(inputs[-MOTION_FRAMES:])
    kwargs = {"verbose": False} if method == "vet" else {}
    with contextlib.redirect_stdout(io.StringIO()):
        velocity = np.asarray(motion.get_method(method)(dbr, **kwargs), np.float64)
    return np.nan_to_num(velocity, nan=0.0, posinf=0.0, neginf=0.0)


def extrapolate(field: np.ndarray, velocity: np.ndarray, n_targets: int) -> np.ndarray:
    """``field`` (H, W) mm/h moved by ``velocity`` (2, H, W) px/step for 1..n_targets steps (pysteps'
    semi-Lagrangian scheme): (n_targets, H, W) mm/h, 0 where the rain would come from beyond the domain."""
    from pysteps.extrapolation import semilagrangian

    frames = semilagrangian.extrapolate(np.asarray(field, np.float64), velocity, n_targets)
    return np.nan_to_num(frames, nan=0.0, posinf=0.0, neginf=0.0).clip(0.0, None)


def _dry_reason(inputs: np.ndarray) -> str | None:
    """Why the AR(2) inputs cannot carry cascade statistics, or None."""
    wet = (inputs[-MOTION_FRAMES:] >= RAIN_THRESHOLD_MMH).sum(axis=(1, 2))
    if np.any(wet == 0):
        return f"no rain >= {RAIN_THRESHOLD_MMH} mm/h in {int(np.sum(wet == 0))} of the last {len(wet)} inputs"
    return None


def _cascade_nowcast(name: str, seed: int, inputs: np.ndarray, velocity: np.ndarray, n_targets: int,
                     config: BaselineConfig, data: DataConfig) -> np.ndarray:  # fmt: skip
    """S-PROG (n_targets, H, W) or STEPS (K, n_targets, H, W), mm/h; raises where pysteps fails or gives NaN."""
    from pysteps import nowcasts

    dbr = to_dbr(inputs[-MOTION_FRAMES:])
    common = dict(precip_thr=10.0 * np.log10(RAIN_THRESHOLD_MMH), n_cascade_levels=config.cascade_levels)
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if name == "sprog":
            out = nowcasts.get_method("sprog")(dbr, velocity, n_targets, **common)
        else:
            out = nowcasts.get_method("steps")(
                dbr,
                velocity,
                n_targets,
                n_ens_members=config.ensemble,
                kmperpixel=data.pixel_km,
                timestep=data.time_step_min,
                seed=seed,
                **common,
            )
    out = np.asarray(out, np.float64)
    # NaN marks pixels whose rain would come from beyond the domain, in S-PROG's extrapolation or a STEPS member's
    # perturbed one (0 mm/h, as in ``extrapolate``); nothing finite at all, or an infinity, is a failure
    if not np.any(np.isfinite(out)) or np.any(np.isinf(out)):
        raise FloatingPointError("the forecast is not finite")
    return from_dbr(out)


def _forecast_all(seed: int, inputs: np.ndarray, n_targets: int, names: tuple[str, ...], config: BaselineConfig,
                  data: DataConfig) -> dict[str, Forecast]:  # fmt: skip
    """Every baseline in ``names`` for one event, sharing one motion field; ``seed`` drives STEPS."""
    inputs = np.asarray(inputs, np.float64)
    if inputs.ndim != 3 or inputs.shape[0] < 2:
        raise ConfigError(f"baselines: inputs must be (n_inputs >= 2, H, W) rain (mm/h), got shape {inputs.shape}.")
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise ConfigError(f"baselines: unknown baseline {unknown}; choose from {BASELINES}.")
    h, w = inputs.shape[1:]
    last = inputs[-1]
    out = {}
    if "persistence" in names:
        out["persistence"] = Forecast(np.repeat(last[None], n_targets, axis=0), np.zeros((2, h, w)))
    if set(names) - {"persistence"}:
        velocity = estimate_motion(inputs, config.motion)
        extrapolated = extrapolate(last, velocity, n_targets)
        out["extrapolation"] = Forecast(extrapolated, velocity)
        dry = _dry_reason(inputs)
        for name in ("sprog", "steps"):
            if name not in names:
                continue
            reason = dry
            if reason is None:
                try:
                    result = _cascade_nowcast(name, seed, inputs, velocity, n_targets, config, data)
                except Exception as error:  # pysteps' failures on near-dry fields are of many kinds
                    reason = f"pysteps raised {type(error).__name__}: {error}"
            if reason is not None:
                message = f"baselines: {name} cannot run on this event ({reason}); its extrapolation stands in."
                warnings.warn(message, BaselineFallbackWarning, stacklevel=2)
                members = np.repeat(extrapolated[None], config.ensemble, axis=0) if name == "steps" else None
                out[name] = Forecast(extrapolated, velocity, members, True)
            elif name == "steps":
                out[name] = Forecast(result.mean(axis=0), velocity, result)
            else:
                out[name] = Forecast(result, velocity)
    return {name: _as_float32(out[name]) for name in names}


def _as_float32(forecast: Forecast) -> Forecast:
    members = None if forecast.members is None else forecast.members.astype(np.float32)
    return Forecast(
        forecast.frames.astype(np.float32), forecast.motion.astype(np.float32), members, bool(forecast.fallback)
    )


def forecast_event(key: jax.Array, inputs: np.ndarray, n_targets: int, name: str, config: BaselineConfig,
                   data: DataConfig) -> Forecast:  # fmt: skip
    """Baseline ``name``'s forecast of one event from ``inputs`` (n_inputs, H, W) mm/h: frames (n_targets, H, W)
    mm/h, its motion (2, H, W) px/step and (STEPS) members (K, n_targets, H, W); ``key`` seeds STEPS."""
    if name not in BASELINES:
        raise ConfigError(f"baselines: unknown baseline {name!r}; choose from {BASELINES}.")
    return _forecast_all(key_to_seed(key), inputs, n_targets, (name,), config, data)[name]


def _stack(forecasts: list[Forecast]) -> Forecast:
    members = [f.members for f in forecasts]
    return Forecast(
        np.stack([f.frames for f in forecasts]),
        np.stack([f.motion for f in forecasts]),
        None if any(m is None for m in members) else np.stack(members),
        np.array([bool(f.fallback) for f in forecasts]),
    )


def run_baselines(key: jax.Array, inputs: np.ndarray, n_targets: int, config: BaselineConfig,
                  data: DataConfig) -> dict[str, Forecast]:  # fmt: skip
    """Every configured baseline's forecast of E events ``inputs`` (E, n_inputs, H, W) mm/h, in config order, each
    stacked over events (frames (E, n_targets, H, W), motion (E, 2, H, W), members (E, K, ...) or None); event i
    draws from ``fold_in(key, i)``, so the numbers do not depend on ``config.workers`` processes."""
    inputs = np.asarray(inputs, np.float32)
    if inputs.ndim != 4:
        raise ConfigError(f"baselines: inputs must be (E, n_inputs, H, W) rain (mm/h), got shape {inputs.shape}.")
    names = tuple(config.baselines)
    seeds = [key_to_seed(jax.random.fold_in(key, i)) for i in range(inputs.shape[0])]
    workers = min(config.workers or os.cpu_count() or 1, max(len(seeds), 1))
    jobs = [(seed, x, n_targets, names, config, data) for seed, x in zip(seeds, inputs, strict=True)]
    if workers <= 1:
        results = [_forecast_all(*job) for job in jobs]
    else:  # spawn: jax's threads do not survive a fork
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = list(pool.map(_forecast_all, *zip(*jobs, strict=True)))
    stacked = {name: _stack([r[name] for r in results]) for name in names}
    for name, forecast in stacked.items():
        if workers > 1 and np.any(forecast.fallback):  # the workers' own warnings went to their stderr
            events = np.flatnonzero(forecast.fallback).tolist()
            message = f"baselines: {name} could not run on events {events}; their extrapolation stands in."
            warnings.warn(message, BaselineFallbackWarning, stacklevel=2)
    return stacked


def motion_endpoint_error(estimate: jax.Array, truth: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean end-point error |estimate - truth| (px/step) over the ``mask``ed pixels: estimate, truth (E, T, 2, H, W),
    mask (E, T, H, W) bool -> (E, T) float32, NaN where the mask is empty."""
    estimate, truth = jnp.asarray(estimate, jnp.float32), jnp.asarray(truth, jnp.float32)
    mask = jnp.asarray(mask, bool)
    error = jnp.hypot(estimate[:, :, 0] - truth[:, :, 0], estimate[:, :, 1] - truth[:, :, 1])
    count = mask.sum(axis=(-2, -1))
    total = jnp.where(mask, error, 0.0).sum(axis=(-2, -1))
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan).astype(jnp.float32)
