"""Embedded rain simulator: the continuity equation dx/dt + (v . grad) x = s on a periodic domain, in JAX.

One event (:func:`simulate_event`) is made on a periodic square domain of ``data.size + 2 * margin`` pixels
(:func:`domain_px`; margin 0: :func:`margin_px`, half the farthest rain travels over the event) and cropped to its
centre, so rain flows in from upwind; on the torus, rain that leaves downwind re-enters upwind only after crossing
the margin, later than the event ends. Steps of ``data.time_step_min``, one semi-Lagrangian step each (the
bilinear interpolation of :mod:`.advection`, indices wrapped):

    x_{t+1} = clip(advect(x_t, m_t) * exp(-decay - sum_j mu_j g_j) + sum_j sigma_j g_j, 0, RAIN_MAX_MMH)

- Initial field: Gaussian noise with a k^-``spectral_slope`` power spectrum (:func:`power_law_noise`, FFT-filtered
  white noise) turned into log-normal stratiform rain (:func:`stratiform_rain`): wet on the top ``wet_fraction``
  of the noise, median about ``stratiform_mmh``, log-standard deviation ``LOG_STD``, a soft edge.
- Motion m_t (:func:`velocity`, pixels per step, divergence-free, periodic): a mean wind (speed ``speed_kmh``,
  direction ``wind_direction_deg``, both varying by ``wind_variation`` over ``flow_period_min``), a rotation and
  deformation about the centre of strength ``shear_per_h`` (linear over the crop, the domain's lowest sine modes
  beyond) whose axes turn over the period, and ``N_MODES`` streamfunction waves of the domain (wavelength >= the
  crop, velocity gradient <= ``shear_per_h``) that wax and wane.
- Sources: ``storms`` convective cells g_j = exp(-|r - c_j|^2 / R_j^2) (R_j from ``storm_radius_km``) whose
  centres move with the flow (c_{t+1} = c_t + m_t(c_{t+1}), the semi-Lagrangian departure rule). A cell lives
  ``storm_lifetime_min``: it grows additively (sigma_j) to ``storm_peak_mmh`` over a random 0.3-0.5 of its life,
  then decays multiplicatively (mu_j, over ``DECAY_REACH`` radii) by ``DECAY_EFOLDS`` e-folds at its centre by
  the end. Peak times are uniform
  over [-0.3, 1] of the event and peak places within the crop (back-traced along the initial wind), so cells are
  seen forming, mature and dying. Stratiform rain decays at ``decay_per_h`` everywhere (growing cells make up
  for it).

The stored motion of frame t is m_t on the crop, in pysteps' order (u along columns, v along rows): the step
from frame t to t + 1 is exactly advect(frame_t, motion_t) * exp(-decay) away from the cells and the upwind edge
(where the crop's advection reads zeros instead of the domain).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbench import progress

from . import advection
from .config import DataConfig, SimulatorConfig
from .schema import RAIN_MAX_MMH, Events

_LOG = logging.getLogger(__name__)

#: Bumped whenever the generated events change for the same settings (invalidates caches).
GENERATOR_VERSION = 1
LOG_STD = 0.7  # ln(mm/h) per unit of the Gaussian noise inside the wet area
EDGE_WIDTH = 0.25  # the stratiform edge ramps from 0 to full over this much of the noise (its std is 1)
N_MODES = 2  # streamfunction waves of the flow
MAX_WAVENUMBER = 2  # waves have up to 2 periods across the domain per axis
DECAY_EFOLDS = 4.0  # a cell's centre decays by exp(-4) from its peak to the end of its life
PEAK_FRACTION = (0.3, 0.5)  # the fraction of a cell's life spent growing
PEAK_TIME = (-0.3, 1.0)  # cell peak times, as fractions of the event duration
STORM_AREA = 0.4  # cells peak within +-0.4 crop sizes of the centre (back-traced along the initial wind)
CHUNK_SIZE = 16  # events per compiled batch
CUTOFF = 3.0  # cells end at 3 radii along each axis
DECAY_REACH = 2.0  # a dying cell decays over twice its radius (its rain spreads by then; no rings)


class Simulation(NamedTuple):
    """One simulated event: frames (T, H, W) mm/h, motion (T, 2, H, W) px/step (u, v) from frame t to t + 1, and
    storm_weight (T, H, W): the summed footprint sum_j g_j of the cells active in the step from frame t (0 at T - 1).
    """

    frames: jax.Array
    motion: jax.Array
    storm_weight: jax.Array


class Flow(NamedTuple):
    """One event's flow parameters (pixels, steps, radians); see :func:`velocity`."""

    speed: jax.Array  # mean wind, px/step
    direction: jax.Array  # radians counterclockwise from +columns (rows point down)
    variation: jax.Array  # relative speed and direction (radians) amplitude of the slow changes
    period: jax.Array  # steps
    phases: jax.Array  # (3,): direction, speed, deformation axes
    rotation: jax.Array  # 1/step
    deformation: jax.Array  # 1/step
    scale: jax.Array  # px: the linear part is L sin(x / L), L = domain / (2 pi)
    mode_k: jax.Array  # (N_MODES, 2) wave vectors (along columns, along rows), rad/px
    mode_amplitude: jax.Array  # (N_MODES,) px/step
    mode_phase: jax.Array  # (N_MODES,)
    mode_time_phase: jax.Array  # (N_MODES,)


# -- sizes ----------------------------------------------------------------------------------------------------------
def _px_per_step(data: DataConfig) -> float:
    """km/h -> pixels per step."""
    return data.time_step_min / 60.0 / data.pixel_km


def _shear_per_step(data: DataConfig, sim: SimulatorConfig) -> float:
    return sim.shear_per_h * data.time_step_min / 60.0


def margin_px(data: DataConfig, sim: SimulatorConfig) -> int:
    """Pixels of padding per side: ``sim.margin``, or (0) half the farthest rain can travel over the event at the
    fastest mean wind plus the waves and the rotation/deformation at the crop's corner."""
    if sim.margin:
        return sim.margin
    shear = _shear_per_step(data, sim)
    waves = N_MODES * shear * 2 * data.size / (2 * math.pi)
    speed = sim.speed_kmh[1] * (1 + sim.wind_variation) * _px_per_step(data) + waves + shear * data.size
    return math.ceil(speed * max(data.n_frames - 1, 1) / 2) + 1


def domain_px(data: DataConfig, sim: SimulatorConfig) -> int:
    """Side of the simulated (periodic) domain: ``data.size + 2 * margin_px`` rounded up to a multiple of 8."""
    return -(-(data.size + 2 * margin_px(data, sim)) // 8) * 8


# -- fields -------------------------------------------------------------------------------------------------------
def power_law_noise(key: jax.Array, size: int, slope: float) -> jax.Array:
    """(size, size) float32 Gaussian field, zero mean and unit std, with power spectrum ~ k^-``slope``: white noise
    filtered by k^(-slope / 2) in Fourier space (periodic; the mean removed)."""
    white = jax.random.normal(key, (size, size), jnp.float32)
    freq = jnp.fft.fftfreq(size).astype(jnp.float32)
    k = jnp.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2)
    amplitude = jnp.where(k > 0, jnp.maximum(k, 1e-12) ** (-slope / 2), 0.0)
    field = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(white) * amplitude)).astype(jnp.float32)
    field = field - jnp.mean(field)
    return field / jnp.std(field)


def stratiform_rain(noise: jax.Array, wet_fraction: jax.Array, median_mmh: jax.Array) -> jax.Array:
    """Log-normal rain (mm/h) from unit Gaussian ``noise`` (H, W): wet on its top ``wet_fraction`` of pixels,
    median_mmh * exp(LOG_STD * (noise - its wet median)), ramped to 0 over EDGE_WIDTH at the edge."""
    q = jnp.quantile(noise, 1.0 - wet_fraction)
    wet_median = jnp.quantile(noise, 1.0 - wet_fraction / 2)
    ramp = jnp.clip((noise - q) / EDGE_WIDTH, 0.0, 1.0)
    rain = median_mmh * jnp.exp(LOG_STD * (noise - wet_median)) * ramp
    return jnp.where(noise > q, rain, 0.0)


def velocity(flow: Flow, t: jax.Array, rows: jax.Array, cols: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(u, v) px/step at time ``t`` (steps) at offsets ``rows``, ``cols`` from the domain centre (broadcast
    together, e.g. (H, 1) and (1, W)): mean wind + rotation/deformation + waves, divergence-free and periodic."""
    shape = jnp.broadcast_shapes(jnp.shape(rows), jnp.shape(cols))
    omega = 2 * jnp.pi / flow.period
    direction = flow.direction + flow.variation * jnp.sin(omega * t + flow.phases[0])
    speed = flow.speed * (1 + flow.variation * jnp.sin(omega * t + flow.phases[1]))
    # rotation/deformation: streamfunction (alpha X^2 + 2 beta X Y + gamma Y^2) / 2 with X = L sin(col / L), ...
    axes = omega * t + flow.phases[2]
    beta, e = flow.deformation * jnp.cos(axes), flow.deformation * jnp.sin(axes)
    gamma, alpha = e - flow.rotation, -(e + flow.rotation)
    big_x, big_y = flow.scale * jnp.sin(cols / flow.scale), flow.scale * jnp.sin(rows / flow.scale)
    u = speed * jnp.cos(direction) + (beta * big_x + gamma * big_y) * jnp.cos(rows / flow.scale)
    v = -speed * jnp.sin(direction) - (alpha * big_x + beta * big_y) * jnp.cos(cols / flow.scale)
    for m in range(N_MODES):  # psi = A / k sin(kc col + kr row + phase): u = d psi / d row, v = -d psi / d col
        kc, kr = flow.mode_k[m, 0], flow.mode_k[m, 1]
        a = flow.mode_amplitude[m] * jnp.cos(omega * t + flow.mode_time_phase[m]) / jnp.sqrt(kc**2 + kr**2)
        phase_c = kc * cols + flow.mode_phase[m]
        wave = jnp.cos(phase_c) * jnp.cos(kr * rows) - jnp.sin(phase_c) * jnp.sin(kr * rows)  # separable
        u, v = u + a * kr * wave, v - a * kc * wave
    return jnp.broadcast_to(u, shape), jnp.broadcast_to(v, shape)


def _uniform(key: jax.Array, bounds: tuple[float, float], shape: tuple[int, ...] = ()) -> jax.Array:
    return jax.random.uniform(key, shape, jnp.float32, bounds[0], bounds[1])


def _draw_flow(key: jax.Array, data: DataConfig, sim: SimulatorConfig) -> Flow:
    keys = jax.random.split(key, 9)
    size = domain_px(data, sim)
    shear = _shear_per_step(data, sim)
    n = jax.random.randint(keys[0], (N_MODES, 2), -MAX_WAVENUMBER, MAX_WAVENUMBER + 1)
    n = n.at[:, 0].set(jnp.where(jnp.all(n == 0, axis=1), 1, n[:, 0]))
    k = 2 * jnp.pi * n.astype(jnp.float32) / size  # the domain's own modes: periodic
    wavelength = 2 * jnp.pi / jnp.sqrt(jnp.sum(k**2, axis=1))
    mix = _uniform(keys[1], (0.0, 0.5 * math.pi))  # rotation vs deformation, |(rotation, deformation)| = shear
    return Flow(
        speed=_uniform(keys[2], sim.speed_kmh) * _px_per_step(data),
        direction=jnp.deg2rad(_uniform(keys[3], sim.wind_direction_deg)),
        variation=jnp.float32(sim.wind_variation),
        period=jnp.float32(sim.flow_period_min / data.time_step_min),
        phases=_uniform(keys[4], (0.0, 2 * math.pi), (3,)),
        rotation=shear * jnp.cos(mix) * jnp.sign(_uniform(keys[5], (-1.0, 1.0))),
        deformation=shear * jnp.sin(mix),
        scale=jnp.float32(size / (2 * math.pi)),
        mode_k=k,
        mode_amplitude=shear * jnp.minimum(wavelength, 2.0 * data.size) / (2 * jnp.pi),  # gradient <= shear
        mode_phase=_uniform(keys[6], (0.0, 2 * math.pi), (N_MODES,)),
        mode_time_phase=_uniform(keys[7], (0.0, 2 * math.pi), (N_MODES,)),
    )


class _Storms(NamedTuple):
    """Per cell (J,): active, peak mm/h, radius px, start / peak / end times (steps), extra decay 1/step; centre
    at t = 0 (J, 2) (row, col offsets)."""

    active: jax.Array
    peak: jax.Array
    radius: jax.Array
    start: jax.Array
    peak_time: jax.Array
    end: jax.Array
    mu: jax.Array
    centre: jax.Array


def _wrap(offset: jax.Array, size: int) -> jax.Array:
    """Offsets from the centre wrapped into [-size / 2, size / 2) (the torus' nearest image)."""
    return jnp.mod(offset + size / 2, size) - size / 2


def _draw_storms(key: jax.Array, data: DataConfig, sim: SimulatorConfig, flow: Flow) -> _Storms:
    n = max(sim.storms[1], 1)  # static slots; cells beyond the drawn count are inactive
    keys = jax.random.split(key, 7)
    count = jax.random.randint(keys[0], (), sim.storms[0], sim.storms[1] + 1)
    steps = data.n_frames - 1
    life = _uniform(keys[1], sim.storm_lifetime_min, (n,)) / data.time_step_min
    growing = _uniform(keys[2], PEAK_FRACTION, (n,))
    peak_time = _uniform(keys[3], PEAK_TIME, (n,)) * steps
    start = peak_time - growing * life
    place = _uniform(keys[4], (-STORM_AREA, STORM_AREA), (n, 2)) * data.size
    u0, v0 = velocity(flow, jnp.float32(0.0), jnp.zeros(()), jnp.zeros(()))
    centre = place - jnp.stack([v0, u0])[None, :] * peak_time[:, None]
    return _Storms(
        active=(jnp.arange(n) < count) & (sim.storms[1] > 0),
        peak=_uniform(keys[5], sim.storm_peak_mmh, (n,)),
        radius=jnp.maximum(_uniform(keys[6], sim.storm_radius_km, (n,)) / data.pixel_km, 0.5),
        start=start,
        peak_time=peak_time,
        end=start + life,
        mu=DECAY_EFOLDS / jnp.maximum((1 - growing) * life, 1e-3),
        centre=_wrap(centre, domain_px(data, sim)),
    )


def _growth(storms: _Storms, t: jax.Array) -> jax.Array:
    """The growing amplitude (J,) mm/h at time t (steps): 0 before the start, peak * smoothstep up to the peak."""
    s = jnp.clip((t - storms.start) / jnp.maximum(storms.peak_time - storms.start, 1e-3), 0.0, 1.0)
    return storms.peak * s * s * (3 - 2 * s)


def _cells(weights: jax.Array, storms: _Storms, centre: jax.Array, offsets: jax.Array, reach: float = 1.0) -> jax.Array:
    """sum_j weights_j exp(-|r - c_j|^2 / (reach R_j)^2) on the grid (H, W) of ``offsets`` (H,), nearest images,
    each axis' factor cut beyond CUTOFF radii."""
    size = offsets.shape[0]

    def profile(axis):  # cut at 3 radii (1e-4 of the peak), so cells leave the dry area dry
        d2 = (_wrap(offsets[None] - centre[:, axis, None], size) / (reach * storms.radius[:, None])) ** 2
        return jnp.where(d2 < CUTOFF**2, jnp.exp(-d2), 0.0)

    return jnp.einsum("j,jr,jc->rc", weights, profile(0), profile(1))


def _move(flow: Flow, centre: jax.Array, t: jax.Array, size: int) -> jax.Array:
    """Cell centres (J, 2) after the step from time t: c' = c + m_t(c'), by fixed-point iteration, wrapped."""
    new = centre
    for _ in range(4):
        u, v = velocity(flow, t, new[:, 0], new[:, 1])
        new = centre + jnp.stack([v, u], axis=1)
    return _wrap(new, size)


def advect_periodic(field: jax.Array, motion: jax.Array) -> jax.Array:
    """One semi-Lagrangian step of ``field`` (H, W) by ``motion`` (2, H, W) px/step on the torus (indices wrapped):
    :func:`.advection.advect`'s bilinear x(r - v(r)) without edges."""
    h, w = field.shape
    rows = jnp.arange(h, dtype=field.dtype)[:, None] - motion[1]
    cols = jnp.arange(w, dtype=field.dtype)[None, :] - motion[0]
    padded = jnp.pad(field, ((0, 1), (0, 1)), mode="wrap")
    return advection.sample_bilinear(padded, jnp.mod(rows, h), jnp.mod(cols, w))


def simulate(key: jax.Array, data: DataConfig, sim: SimulatorConfig) -> Simulation:
    """One event with its cells' footprints (see the module docstring); jit with data and sim static."""
    k_noise, k_rain, k_flow, k_storms = jax.random.split(key, 4)
    size, n = domain_px(data, sim), data.size
    lo = (size - n) // 2
    offsets = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
    rows, cols = offsets[:, None], offsets[None, :]
    crop = lambda field: jax.lax.slice(field, (lo, lo), (lo + n, lo + n))  # noqa: E731

    wet, median = jax.random.uniform(k_rain, (2,), jnp.float32)
    wet = sim.wet_fraction[0] + wet * (sim.wet_fraction[1] - sim.wet_fraction[0])
    median = sim.stratiform_mmh[0] + median * (sim.stratiform_mmh[1] - sim.stratiform_mmh[0])
    rain = stratiform_rain(power_law_noise(k_noise, size, sim.spectral_slope), wet, median)

    flow = _draw_flow(k_flow, data, sim)
    storms = _draw_storms(k_storms, data, sim, flow)
    decay = sim.decay_per_h * data.time_step_min / 60.0
    after_peak = jnp.minimum(0.0, storms.end) - storms.peak_time
    initial = jnp.where(
        storms.peak_time >= 0, _growth(storms, jnp.float32(0.0)), storms.peak * jnp.exp(-storms.mu * after_peak)
    ) * jnp.exp(-decay * jnp.maximum(-storms.peak_time, 0.0))
    rain = rain + _cells(jnp.where(storms.active, initial, 0.0), storms, storms.centre, offsets)
    rain = jnp.clip(rain, 0.0, RAIN_MAX_MMH)

    def step(carry, t):
        x, centre = carry
        moved = advect_periodic(x, jnp.stack(velocity(flow, t, rows, cols)))
        centre = _move(flow, centre, t, size)
        grow = _growth(storms, t + 1) - _growth(storms, t) + _growth(storms, t) * (1 - jnp.exp(-decay))
        grow = jnp.where(storms.active & (t < storms.peak_time), grow, 0.0)
        overlap = jnp.clip(jnp.minimum(t + 1, storms.end) - jnp.maximum(t, storms.peak_time), 0.0, 1.0)
        mu = jnp.where(storms.active, storms.mu * overlap, 0.0)
        rate = decay + _cells(mu, storms, centre, offsets, DECAY_REACH)
        x = jnp.clip(moved * jnp.exp(-rate) + _cells(grow, storms, centre, offsets), 0.0, RAIN_MAX_MMH)
        active = (grow > 0) | (mu > 0)
        weight = _cells(jnp.where(active, 1.0, 0.0), storms, centre, offsets, DECAY_REACH)
        return (x, centre), (crop(x), crop(weight))

    times = jnp.arange(data.n_frames, dtype=jnp.float32)
    _, (frames, weights) = jax.lax.scan(step, (rain, storms.centre), times[:-1])
    frames = jnp.concatenate([crop(rain)[None], frames])
    weights = jnp.concatenate([weights, jnp.zeros((1, n, n), jnp.float32)])
    crop_offsets = offsets[lo : lo + n]
    motion = jax.vmap(lambda t: jnp.stack(velocity(flow, t, crop_offsets[:, None], crop_offsets[None, :])))(times)
    return Simulation(frames, motion, weights)


_simulate_jit = jax.jit(simulate, static_argnums=(1, 2))


def simulate_event(key: jax.Array, data: DataConfig, sim: SimulatorConfig) -> tuple[jax.Array, jax.Array]:
    """One event: frames (T, H, W) float32 mm/h in [0, 128] and its true motion (T, 2, H, W) px/step (u, v)."""
    frames, motion, _ = _simulate_jit(key, data, sim)
    return frames, motion


@functools.partial(jax.jit, static_argnums=(2, 3))
def _simulate_batch(key: jax.Array, indices: jax.Array, data: DataConfig, sim: SimulatorConfig):
    one = lambda i: simulate(jax.random.fold_in(key, i), data, sim)[:2]  # noqa: E731
    return jax.vmap(one)(indices)


def generate_events(
    key: jax.Array, n: int, data: DataConfig, sim: SimulatorConfig, chunk_size: int = CHUNK_SIZE
) -> Events:
    """``n`` events, event i from fold_in(key, i) (independent of ``chunk_size``), made ``chunk_size`` at a time
    by one compiled vmapped program; case = arange(n)."""
    frames, motion = [], []
    with progress.bar(f"nowcast: simulating {n} events", n) as advance:
        for start in range(0, n, chunk_size):
            count = min(chunk_size, n - start)
            indices = jnp.arange(start, start + chunk_size, dtype=jnp.uint32)  # padded: one compilation
            f, m = _simulate_batch(key, indices, data, sim)
            frames.append(np.asarray(f[:count]))
            motion.append(np.asarray(m[:count]))
            advance(count)
    t, size = data.n_frames, data.size
    return Events(
        frames=np.concatenate(frames) if frames else np.zeros((0, t, size, size), np.float32),
        motion=np.concatenate(motion) if motion else np.zeros((0, t, 2, size, size), np.float32),
        case=np.arange(n, dtype=np.int32),
    )


# -- cache ----------------------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$JAXBENCH_CACHE/nowcast`` or ``~/.cache/jaxbench/nowcast``."""
    return Path(os.environ.get("JAXBENCH_CACHE") or Path.home() / ".cache" / "jaxbench") / "nowcast"


def events_params(key: jax.Array, n: int, data: DataConfig, sim: SimulatorConfig) -> dict[str, Any]:
    """Everything the events depend on, as JSON: the key's uint32 words, n, both configs, versions."""
    return {
        "key": [int(w) for w in np.asarray(jax.random.key_data(key)).ravel()],
        "n": int(n),
        "data": dataclasses.asdict(data),
        "simulator": dataclasses.asdict(sim),
        "generator_version": GENERATOR_VERSION,
        "jax": jax.__version__,
    }


def cache_path(cache_dir: str | Path, params: dict[str, Any]) -> Path:
    """``<cache_dir>/events-<sha256 of params>``."""
    canonical = json.dumps(params, sort_keys=True, default=str)
    return Path(cache_dir) / f"events-{hashlib.sha256(canonical.encode()).hexdigest()[:24]}"


_FIELDS = ("frames", "motion", "case")


def _read_entry(path: Path, params: dict[str, Any]) -> Events | str:
    """The cached events, or why the entry cannot be used."""
    from jaxbench.records import read_arrays, read_json

    try:
        card = read_json(path / "datacard.json")
        arrays = read_arrays(path / "arrays")
    except Exception as error:  # noqa: BLE001 (any unreadable entry is made again)
        return str(error)
    if not isinstance(card, dict) or card.get("config") != json.loads(json.dumps(params, default=str)):
        return "its datacard was made for another key or config"
    if set(arrays) != set(_FIELDS):
        return f"arrays {sorted(arrays)} instead of {list(_FIELDS)}"
    shapes = {name: list(arrays[name].shape) for name in _FIELDS}
    if shapes != card.get("shapes"):
        return f"shapes {shapes} do not match the datacard's {card.get('shapes')}"
    return Events(*(arrays[name] for name in _FIELDS))


def cached_events(cache_dir: str | Path, key: jax.Array, n: int, data: DataConfig, sim: SimulatorConfig) -> Events:
    """:func:`generate_events` through a cache: ``<cache_dir>/events-<hash>`` holds zarr arrays (tensorstore) and a
    datacard.json (what, config = key + n + configs + versions, key, shapes, time); written in a temporary
    directory and renamed into place. Another key or config is another entry; an unreadable entry, or one whose
    datacard disagrees with its arrays or the request, is made again (logged)."""
    from jaxbench.records import atomic_write_json, write_arrays

    params = events_params(key, n, data, sim)
    path = cache_path(cache_dir, params)
    if path.exists():
        found = _read_entry(path, params)
        if isinstance(found, Events):
            return found
        _LOG.warning("nowcast cache %s is unusable (%s); generating it again.", path, found)
    start = time.perf_counter()
    events = generate_events(key, n, data, sim)
    seconds = time.perf_counter() - start
    card = {
        "what": "simulated radar rain-rate events (continuity equation with sources) and their true motion",
        "source": "jaxbench tasks.nowcast.generator",
        "config": params,
        "key": params["key"],
        "shapes": {name: list(getattr(events, name).shape) for name in _FIELDS},
        "units": {"frames": "mm/h", "motion": "pixels per step (u along columns, v along rows)"},
        "domain_px": domain_px(data, sim),
        "seconds": seconds,
        "events_per_second": n / seconds if seconds > 0 else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write_arrays(tmp / "arrays", events._asdict())
        atomic_write_json(tmp / "datacard.json", card)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return events
