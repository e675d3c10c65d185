"""Forecast verification of rain fields (nowcasting): contingency counts and CSI, neighbourhood CSI, FSS, errors,
centroid shift, trend and the radially averaged power spectrum; jitted, vmappable, float32.

Shapes: forecast and observed fields (..., T, H, W) in mm/h (the task passes (E, T, H, W): E events, T lead
times); every per-frame score reduces the last two axes. Settings (thresholds, operator, NaN policy, window sizes)
are static arguments: each combination compiles once.

Conventions, checked against pysteps 1.21.5 (``tests/kernels/test_verification.py``):

* ``operator``: an event is ``value >= threshold`` (">=", NowcastNet's evaluation) or ``value > threshold``
  (">", what ``pysteps.verification.detcatscores.det_cat_fct`` does: ``pred > thr``, ``obs > thr``). pysteps'
  ``spatialscores.fss`` uses ``>=`` instead; here the FSS follows ``operator`` like the CSI, so with the default
  ">=" it equals pysteps' FSS.
* ``nan_policy``: "no_event" is what pysteps does: a NaN pixel is *no event* (``NaN > thr`` is False, and
  ``det_cat_fct_accum``'s ``nansum`` of booleans drops nothing), so a NaN forecast where rain was observed counts
  as a miss and a NaN observation under a forecast event as a false alarm; pysteps' FSS sets non-finite pixels to
  ``thr - 1``, the same thing. The continuous scores (MAE, means, trend, centroid mass, active-area MAE) leave NaN
  pixels out. "propagate": any NaN pixel in a frame's forecast or observation makes every score of that frame NaN
  (the trend's also for a NaN in ``last_input``).
* Neighbourhood CSI (NowcastNet's "CSI neighbourhood"): both fields max-pooled with a ``k`` x ``k`` window,
  stride 1, 'valid' (no padding: (H - k + 1, W - k + 1) windows, each lying wholly inside the field, so no
  border pixel counts twice), then the plain contingency of the pooled fields.
* Counts are float32 (exact up to 2**24 pixels per frame) so a propagated NaN fits; CSI is NaN where
  hits + misses + false alarms = 0 (no event in either field: undefined, not 0).

Speed (XLA on CPU): every threshold's counts come from one joint histogram of (forecast, observed) threshold
levels per frame rather than three compare-and-reduce passes per threshold (``stats.contingency``'s way: XLA runs
such sibling reductions unvectorised); windows are shifted slices with doubling, not ``reduce_window``; and
``field_metrics`` scores one frame per step of a ``lax.map`` on CPU, so that intermediates stay in cache (1.0 s ->
0.23 s for 64 x 12 frames of 128^2 on 2 cores; ``scripts/bench_nowcast.py``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxbench.errors import ConfigError, DataFormatError

from . import fields, stats
from .segments import segment_sum

OPERATORS = (">=", ">")
NAN_POLICIES = ("no_event", "propagate")
ACTIVE_MODES = fields.MASK_MODES
_PIXELS = (-2, -1)


def _choose(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"verification: {name} must be one of {choices}, got {value!r}.")


def _at_least(name: str, value: int, low: int = 1) -> None:
    if int(value) != value or value < low:
        raise ConfigError(f"verification: {name} must be an integer >= {low}, got {value!r}.")


def event_threshold(threshold: float, operator: str) -> float:
    """The float32 t' with ``x >= t'`` exactly when ``x <operator> threshold``, for float32 x (">" -> next float up)."""
    _choose("operator", operator, OPERATORS)
    t = np.float32(threshold)
    return float(np.nextafter(t, np.float32(np.inf)) if operator == ">" else t)


def _nan_frames(*fields_: jax.Array) -> jax.Array:
    """Frames (...,) of (..., H, W) fields that hold a NaN in any of them."""
    return functools.reduce(jnp.logical_or, [jnp.any(jnp.isnan(f), axis=_PIXELS) for f in fields_])


def _propagate(values, bad: jax.Array, nan_policy: str):
    """``values`` (a pytree of per-frame arrays) with NaN on the ``bad`` frames under "propagate"."""
    if nan_policy == "no_event":
        return values
    return jax.tree.map(lambda v: jnp.where(bad, jnp.nan, v.astype(jnp.float32)), values)


class ContingencyCounts(NamedTuple):
    """Per-frame contingency counts (float32, (..., T)): forecast event & observed event, observed only, forecast
    only."""

    hits: jax.Array
    misses: jax.Array
    false_alarms: jax.Array


def _levels(field: jax.Array, cuts: tuple[float, ...]) -> jax.Array:
    """Number of the increasing float32 ``cuts`` that each pixel reaches (x >= cut), int8; NaN reaches none."""
    return functools.reduce(jnp.add, [(field >= c).astype(jnp.int8) for c in cuts])


def _contingency_table(
    forecast: jax.Array, observed: jax.Array, thresholds: tuple[float, ...], operator: str
) -> dict[float, ContingencyCounts]:
    """Counts at every threshold from one joint histogram per frame of (forecast level, observed level).

    The level of a pixel is the number of (sorted) thresholds its value is an event at; one scatter-add counts the
    (K + 1)^2 level pairs of each frame, and the counts at threshold k sum its corners: on CPU this is several
    times faster than comparing and reducing three masks per threshold (XLA's sibling reductions run unvectorised).
    """
    cuts = tuple(sorted({event_threshold(t, operator) for t in thresholds}))
    n_levels = len(cuts) + 1
    lf, lo = _levels(forecast, cuts), _levels(observed, cuts)
    frames = int(np.prod(forecast.shape[:-2], dtype=np.int64))
    code = (lf.astype(jnp.int32) * n_levels + lo).reshape(frames, -1)
    ids = code + (n_levels * n_levels) * jnp.arange(frames, dtype=jnp.int32)[:, None]
    joint = jax.ops.segment_sum(jnp.ones(ids.size, jnp.int32), ids.ravel(), frames * n_levels * n_levels)
    joint = joint.reshape(frames, n_levels, n_levels)
    # at_least[:, a, b] = pixels with forecast level >= a and observed level >= b.
    at_least = jnp.cumsum(jnp.cumsum(joint[:, ::-1, ::-1], axis=1), axis=2)[:, ::-1, ::-1]
    out = {}
    for t in thresholds:
        k = cuts.index(event_threshold(t, operator)) + 1
        hits, observed_events, forecast_events = at_least[:, k, k], at_least[:, 0, k], at_least[:, k, 0]
        counts = (hits, observed_events - hits, forecast_events - hits)
        out[t] = ContingencyCounts(*(c.astype(jnp.float32).reshape(forecast.shape[:-2]) for c in counts))
    return out


@functools.partial(jax.jit, static_argnames=("threshold", "operator", "nan_policy"))
def contingency_counts(
    forecast: ArrayLike, observed: ArrayLike, threshold: float, operator: str = ">=", nan_policy: str = "no_event"
) -> ContingencyCounts:
    """Hits, misses and false alarms of (..., H, W) fields (mm/h) at ``threshold`` over the last two axes."""
    _choose("nan_policy", nan_policy, NAN_POLICIES)
    f, o = jnp.asarray(forecast, jnp.float32), jnp.asarray(observed, jnp.float32)
    counts = _contingency_table(f, o, (threshold,), operator)[threshold]
    return _propagate(counts, _nan_frames(f, o), nan_policy)


def _window(x: jax.Array, size: int, axis: int, combine) -> jax.Array:
    """``combine`` (add or max) over every ``size`` consecutive entries along ``axis`` ('valid': n - size + 1 left).

    Windows of 1, 2, 4, ... entries by doubling, then ``size`` from its binary digits: ~2 log2(size) operations
    per entry instead of size - 1 (shifted slices: XLA's CPU reduce_window is several times slower).
    """
    n = x.shape[axis]
    out_n = n - size + 1
    powers = {1: x}
    width = 1
    while 2 * width <= size:
        w = powers[width]
        m = w.shape[axis] - width
        powers[2 * width] = combine(
            lax.slice_in_dim(w, 0, m, axis=axis), lax.slice_in_dim(w, width, width + m, axis=axis)
        )
        width *= 2
    parts, offset = [], 0
    for width in sorted(powers, reverse=True):
        if size - offset >= width:
            parts.append(lax.slice_in_dim(powers[width], offset, offset + out_n, axis=axis))
            offset += width
    return functools.reduce(combine, parts)


def max_pool(field: jax.Array, size: int) -> jax.Array:
    """Max over every ``size`` x ``size`` window of (..., H, W), stride 1, 'valid' -> (..., H - size + 1, W - size + 1).

    NaN pixels count as -inf (no event), so a window is NaN-free unless all its pixels are NaN (then -inf).
    """
    x = jnp.where(jnp.isnan(field), -jnp.inf, field)
    for axis in _PIXELS:
        x = _window(x, size, axis, jnp.maximum)
    return x


@functools.partial(jax.jit, static_argnames=("threshold", "neighbourhood", "operator", "nan_policy"))
def neighbourhood_counts(
    forecast: ArrayLike,
    observed: ArrayLike,
    threshold: float,
    neighbourhood: int = 2,
    operator: str = ">=",
    nan_policy: str = "no_event",
) -> ContingencyCounts:
    """Contingency counts of the ``neighbourhood``-max-pooled (stride 1, valid) fields (..., H, W) at ``threshold``."""
    return _neighbourhood_table(forecast, observed, (threshold,), neighbourhood, operator, nan_policy)[threshold]


def _neighbourhood_table(forecast, observed, thresholds, neighbourhood, operator, nan_policy):
    _choose("nan_policy", nan_policy, NAN_POLICIES)
    _at_least("neighbourhood", neighbourhood)
    f, o = jnp.asarray(forecast, jnp.float32), jnp.asarray(observed, jnp.float32)
    if neighbourhood > min(f.shape[-2:]):
        raise ConfigError(f"verification: neighbourhood {neighbourhood} exceeds the field size {f.shape[-2:]}.")
    table = _contingency_table(max_pool(f, neighbourhood), max_pool(o, neighbourhood), thresholds, operator)
    return _propagate(table, _nan_frames(f, o), nan_policy)


@jax.jit
def csi(hits: ArrayLike, misses: ArrayLike, false_alarms: ArrayLike) -> jax.Array:
    """Critical success index h / (h + m + f) elementwise; NaN where h + m + f = 0 (no event: undefined)."""
    h, m, f = (jnp.asarray(c, jnp.float32) for c in (hits, misses, false_alarms))
    denom = h + m + f
    return jnp.where(denom > 0, h / jnp.where(denom > 0, denom, 1.0), jnp.nan)


@jax.jit
def pooled_csi(hits: ArrayLike, misses: ArrayLike, false_alarms: ArrayLike) -> jax.Array:
    """CSI of the counts summed over axis 0 (events): (E, T) -> (T,); NaN if an event's count is NaN or no event.

    This is the contingency pooled over events, not the mean of the events' CSIs. Sums are int32 (exact).
    """

    def total(c):
        c = jnp.asarray(c, jnp.float32)
        summed = jnp.sum(jnp.where(jnp.isnan(c), 0, c).astype(jnp.int32), axis=0)
        return jnp.where(jnp.any(jnp.isnan(c), axis=0), jnp.nan, summed.astype(jnp.float32))

    h, m, f = total(hits), total(misses), total(false_alarms)
    return csi(h, m, f)


def box_counts(binary: jax.Array, size: int) -> jax.Array:
    """Number of True pixels (float32, exact) in the ``size`` x ``size`` window around each pixel of (..., H, W),
    zeros outside.

    The window of pixel i spans [i - size // 2, i + size - 1 - size // 2] on each axis, as
    ``scipy.ndimage.uniform_filter(size=size, mode="constant")`` (whose value is this count / size**2).
    """
    x = binary.astype(jnp.float32)
    lo, hi = size // 2, size - 1 - size // 2
    for axis in _PIXELS:
        pad = [(0, 0)] * x.ndim
        pad[axis] = (lo, hi)
        x = _window(jnp.pad(x, pad), size, axis, jnp.add)
    return x


@functools.partial(jax.jit, static_argnames=("threshold", "scale", "operator", "nan_policy"))
def fss(
    forecast: ArrayLike,
    observed: ArrayLike,
    threshold: float,
    scale: int,
    operator: str = ">=",
    nan_policy: str = "no_event",
) -> jax.Array:
    """Fractions skill score per frame of (..., H, W) fields at ``threshold`` (mm/h) and window ``scale`` (pixels).

    As ``pysteps.verification.spatialscores.fss``: event fractions by a ``scale``-wide uniform filter (zero outside
    the field), FSS = 1 - sum (F - O)^2 / sum (F^2 + O^2); NaN when neither field has an event.
    """
    _choose("nan_policy", nan_policy, NAN_POLICIES)
    _at_least("fss scale", scale)
    f, o = jnp.asarray(forecast, jnp.float32), jnp.asarray(observed, jnp.float32)
    t = event_threshold(threshold, operator)
    # The window area scales both sums alike, so the counts stand for the fractions.
    cf, co = box_counts(f >= t, scale), box_counts(o >= t, scale)
    num = jnp.sum((cf - co) ** 2, axis=_PIXELS)
    den = jnp.sum(cf**2 + co**2, axis=_PIXELS)
    score = jnp.where(den > 0, 1.0 - num / jnp.where(den > 0, den, 1.0), jnp.nan)
    return _propagate(score, _nan_frames(f, o), nan_policy)


def _nanmean_pixels(x: jax.Array) -> jax.Array:
    """Mean over the finite pixels of (..., H, W); NaN where none is."""
    ok = ~jnp.isnan(x)
    n = jnp.sum(ok, axis=_PIXELS)
    total = jnp.sum(jnp.where(ok, x, 0.0), axis=_PIXELS)
    return jnp.where(n > 0, total / jnp.maximum(n, 1), jnp.nan)


@functools.partial(
    jax.jit,
    static_argnames=(
        "thresholds",
        "operator",
        "nan_policy",
        "neighbourhood",
        "active_threshold",
        "fss_scale",
        "fss_threshold",
        "frames_per_step",
    ),
)
def field_metrics(
    forecast: ArrayLike,
    observed: ArrayLike,
    last_input: ArrayLike,
    *,
    thresholds: tuple[float, ...] = (16.0, 32.0, 64.0),
    operator: str = ">=",
    nan_policy: str = "no_event",
    neighbourhood: int = 2,
    active_threshold: float = 5.0,
    fss_scale: int = 8,
    fss_threshold: float = 16.0,
    frames_per_step: int | None = None,
) -> dict[str, jax.Array]:
    """Every per-frame score of forecast vs observed (..., T, H, W) mm/h; ``last_input`` (..., H, W) the last
    observed frame. Returns {name: (..., T) float32}:

    ``hits_<t>``, ``misses_<t>``, ``false_alarms_<t>``, ``csi_<t>`` and the neighbourhood ``nhits_<t>``, ...,
    ``ncsi_<t>`` per threshold t (``f"{t:g}"``); ``mae`` (all pixels); ``active_mae_<mode>`` and
    ``active_pixels_<mode>`` for the pixels >= ``active_threshold`` of the observed / predicted field, their union
    and intersection (NaN MAE without an active pixel); ``com_dy``, ``com_dx``, ``com_r``: forecast minus observed
    rain-weighted centroid (pixels; NaN when either field is dry); ``mean_forecast``, ``mean_observed`` (mm/h);
    ``trend_forecast``, ``trend_observed``: frame mean minus the mean of ``last_input`` (mm/h);
    ``fss_<fss_threshold>_s<fss_scale>``. See the module docstring for ``operator`` and ``nan_policy``.
    ``frames_per_step``: frames scored per step of a loop over them (None: 1 on CPU, all at once elsewhere).
    """
    _choose("operator", operator, OPERATORS)
    _choose("nan_policy", nan_policy, NAN_POLICIES)
    f, o = jnp.asarray(forecast, jnp.float32), jnp.asarray(observed, jnp.float32)
    last = jnp.asarray(last_input, jnp.float32)
    if f.shape != o.shape or f.ndim < 3 or last.shape != f.shape[:-3] + f.shape[-2:]:
        raise DataFormatError(
            f"verification.field_metrics: forecast {f.shape} and observed {o.shape} must be equal (..., T, H, W) "
            f"and last_input {last.shape} (..., H, W)."
        )
    if not thresholds:
        raise ConfigError("verification.field_metrics: thresholds must name at least one threshold (mm/h).")
    _at_least("neighbourhood", neighbourhood)
    _at_least("fss_scale", fss_scale)
    if neighbourhood > min(f.shape[-2:]):
        raise ConfigError(f"verification: neighbourhood {neighbourhood} exceeds the field size {f.shape[-2:]}.")
    frames_shape, pixels = f.shape[:-2], f.shape[-2:]
    score = functools.partial(
        _frame_scores,
        thresholds=tuple(thresholds),
        operator=operator,
        neighbourhood=neighbourhood,
        active_threshold=active_threshold,
        fss_scale=fss_scale,
        fss_threshold=fss_threshold,
    )
    flat = f.reshape(-1, *pixels), o.reshape(-1, *pixels)
    if (frames_per_step or 0) <= 0:
        frames_per_step = 1 if jax.default_backend() == "cpu" else flat[0].shape[0]
    n, step = flat[0].shape[0], min(frames_per_step, flat[0].shape[0])
    pad = -n % step
    chunks = [jnp.pad(x, ((0, pad), (0, 0), (0, 0))).reshape(-1, step, *pixels) for x in flat]
    # On CPU a loop over frames keeps every intermediate in cache: ~2.5x faster than whole-batch ops at 128^2.
    per_frame = lax.map(lambda fo: score(*fo), tuple(chunks)) if chunks[0].shape[0] > 1 else score(*flat)
    out = {k: v.reshape(-1)[:n].reshape(frames_shape).astype(jnp.float32) for k, v in per_frame.items()}

    base = _nanmean_pixels(last)[..., None]
    out["trend_forecast"] = out["mean_forecast"] - base
    out["trend_observed"] = out["mean_observed"] - base
    bad = _nan_frames(f, o)
    trends = {"trend_forecast", "trend_observed"}
    bad_trend = bad | jnp.any(jnp.isnan(last), axis=_PIXELS)[..., None]
    return {k: _propagate(v, bad_trend if k in trends else bad, nan_policy) for k, v in out.items()}


def _frame_scores(
    f: jax.Array,
    o: jax.Array,
    *,
    thresholds: tuple[float, ...],
    operator: str,
    neighbourhood: int,
    active_threshold: float,
    fss_scale: int,
    fss_threshold: float,
) -> dict[str, jax.Array]:
    """field_metrics' scores (but the trends) of (n, H, W) frames with NaN = no event -> {name: (n,)}."""
    out: dict[str, jax.Array] = {}
    plain = _contingency_table(f, o, thresholds, operator)
    pooled = _contingency_table(max_pool(f, neighbourhood), max_pool(o, neighbourhood), thresholds, operator)
    for t in thresholds:
        name = f"{t:g}"
        for prefix, counts in (("", plain[t]), ("n", pooled[t])):
            out |= {f"{prefix}{k}_{name}": v for k, v in counts._asdict().items()}
            out[f"{prefix}csi_{name}"] = csi(*counts)

    out["mae"] = _nanmean_pixels(jnp.abs(f - o))
    # A pixel where either field is NaN is in no active area: -inf is below every threshold.
    valid = ~(jnp.isnan(f) | jnp.isnan(o))
    fa, oa = jnp.where(valid, f, -jnp.inf), jnp.where(valid, o, -jnp.inf)
    for mode in ACTIVE_MODES:
        errors = fields.active_area_errors(fa, oa, active_threshold, mode)
        out[f"active_mae_{mode}"] = errors.mae
        out[f"active_pixels_{mode}"] = errors.pixels.astype(jnp.float32)

    shift = stats.centroid(jnp.where(jnp.isnan(f), 0.0, f)) - stats.centroid(jnp.where(jnp.isnan(o), 0.0, o))
    out["com_dy"], out["com_dx"] = shift[..., 0], shift[..., 1]
    out["com_r"] = jnp.hypot(shift[..., 0], shift[..., 1])
    out["mean_forecast"], out["mean_observed"] = _nanmean_pixels(f), _nanmean_pixels(o)
    out[f"fss_{fss_threshold:g}_s{fss_scale}"] = fss(f, o, fss_threshold, fss_scale, operator, "no_event")
    return out


def _spectrum_bins(h: int, w: int) -> tuple[np.ndarray, int]:
    """pysteps' radial bins of an (h, w) shifted spectrum: rounded distance from the centre pixel, and their count."""
    yc = np.arange(h) - h // 2
    xc = np.arange(w) - w // 2
    radius = np.rint(np.hypot(yc[:, None], xc[None, :])).astype(np.int32)
    size = max(h, w)
    n_bins = size // 2 + (size % 2)
    return radius, n_bins


@functools.partial(jax.jit, static_argnames="normalize")
def rapsd(field: ArrayLike, pixel_km: float = 1.0, normalize: bool = False) -> tuple[jax.Array, jax.Array]:
    """Radially averaged power spectrum of an (H, W) field and its frequencies (1 / km); as pysteps'
    ``utils.spectral.rapsd(field, fft_method=np.fft, return_freq=True, d=pixel_km, normalize=normalize)``.

    Power |fftshift(fft2(x))|^2 / (H W), averaged over the pixels whose distance from the centre rounds to r, for
    r = 0 .. L // 2 - 1 (L = max(H, W) even; up to L // 2 when odd); frequencies r / (L pixel_km); ``normalize``
    scales the spectrum to sum 1. A NaN pixel gives NaN (pysteps raises). vmap it over fields.
    """
    x = jnp.asarray(field, jnp.float32)
    h, w = x.shape
    radius, n_bins = _spectrum_bins(h, w)
    # float32 FFT errors scale with the field's norm; the mean of a rain field dominates it, so transform the
    # anomaly and put the exact mean's power back at the centre (bin 0 is that pixel alone).
    mean = jnp.mean(x)
    power = jnp.abs(jnp.fft.fftshift(jnp.fft.fft2(x - mean))) ** 2 / (h * w)
    power = power.at[h // 2, w // 2].set(mean**2 * (h * w))
    ids = jnp.asarray(np.where(radius < n_bins, radius, -1).ravel())
    counts = np.bincount(radius[radius < n_bins], minlength=n_bins).astype(np.float32)
    spectrum = segment_sum(power.ravel(), ids, n_bins) / jnp.asarray(counts)
    if normalize:
        spectrum = spectrum / jnp.sum(spectrum)
    size = max(h, w)
    frequencies = jnp.arange(n_bins, dtype=jnp.float32) * (1.0 / (size * jnp.asarray(pixel_km, jnp.float32)))
    return spectrum, frequencies
