"""pysteps baselines: persistence, extrapolation of a known translation, S-PROG / STEPS shapes and seeding, dry
events, the per-event loop behind ``run_baselines``, and the motion end-point error against a numpy loop."""

import dataclasses
import time
import warnings

import jax
import numpy as np
import pytest

from jaxbench.errors import ConfigError
from tasks.nowcast import baselines
from tasks.nowcast.config import TINY

CONFIG = TINY.baselines  # 2 members, 3 cascade levels, in-process
DATA = TINY.data  # 4 inputs, 6 targets, 30 min steps, 4 km pixels
SIZE = 32
SHIFT = (1, 2)  # (u along columns, v along rows), px/step


def gaussian_rain(t: float, size: int = SIZE, shift=SHIFT, start=(8.0, 7.0)) -> np.ndarray:
    """Two Gaussian cells (mm/h) whose centres sit at ``start`` + t * (v, u) (row, col): an exact translation."""
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    r0, c0 = start[0] + shift[1] * t, start[1] + shift[0] * t
    cell = lambda r, c, peak, width: peak * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * width**2))  # noqa: E731
    return (cell(r0, c0, 20.0, 3.0) + cell(r0 + 4, c0 - 3, 5.0, 2.5)).astype(np.float32)


def translated_event(n_inputs: int = DATA.n_inputs, **kwargs) -> np.ndarray:
    """``n_inputs`` frames (n_inputs, H, W) of the translating cells."""
    return np.stack([gaussian_rain(t, **kwargs) for t in range(n_inputs)])


def textured_event(seed: int = 0) -> np.ndarray:
    """Rain with structure on several scales (cells on a patchy background), moving (1, 2) px/step: (4, H, W)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    base = sum(
        rng.uniform(2, 15) * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * w**2))
        for r, c, w in zip(rng.uniform(4, 28, 8), rng.uniform(4, 28, 8), rng.uniform(1.5, 5, 8), strict=True)
    )
    return np.stack([np.roll(base, (2 * t, t), axis=(0, 1)) for t in range(DATA.n_inputs)]).astype(np.float32)


def test_persistence_repeats_the_last_frame():
    inputs = textured_event()
    f = baselines.forecast_event(jax.random.key(0), inputs, 5, "persistence", CONFIG, DATA)
    np.testing.assert_array_equal(f.frames, np.repeat(inputs[-1:], 5, axis=0))
    np.testing.assert_array_equal(f.motion, np.zeros((2, SIZE, SIZE)))
    assert f.members is None and not f.fallback


@pytest.mark.parametrize("motion", ["lucaskanade", "vet"])
def test_extrapolation_recovers_a_uniform_translation(motion):
    inputs = translated_event()
    config = dataclasses.replace(CONFIG, motion=motion)
    f = baselines.forecast_event(jax.random.key(0), inputs, 3, "extrapolation", config, DATA)
    rainy = inputs[-1] > 1.0
    for component, expected in enumerate(SHIFT):  # the field over the rainy area, not only its mean
        np.testing.assert_allclose(f.motion[component][rainy], expected, atol=0.3)
    truth = gaussian_rain(DATA.n_inputs - 1 + 3)  # the cells three steps after the last input
    rows, cols = np.mgrid[:SIZE, :SIZE]
    centroid = lambda x: np.array([(x * rows).sum(), (x * cols).sum()]) / x.sum()  # noqa: E731
    np.testing.assert_allclose(centroid(f.frames[2]), centroid(truth), atol=0.3)
    np.testing.assert_allclose(f.frames[2], truth, atol=0.05 * truth.max())


def test_cascade_baselines_are_finite_nonnegative_with_their_shapes():
    inputs = textured_event()
    for name in ("sprog", "steps"):
        f = baselines.forecast_event(jax.random.key(1), inputs, DATA.n_targets, name, CONFIG, DATA)
        assert f.frames.shape == (DATA.n_targets, SIZE, SIZE) and f.motion.shape == (2, SIZE, SIZE)
        assert f.frames.dtype == np.float32 and not f.fallback
        assert np.all(np.isfinite(f.frames)) and np.all(f.frames >= 0)
        assert f.frames.max() > 1.0  # rain survives the dBR round trip
        if name == "steps":
            assert f.members.shape == (CONFIG.ensemble, DATA.n_targets, SIZE, SIZE)
            assert np.all(np.isfinite(f.members)) and np.all(f.members >= 0)
            np.testing.assert_allclose(f.frames, f.members.mean(axis=0, dtype=np.float64), rtol=1e-5, atol=1e-6)
        else:
            assert f.members is None


def test_steps_members_follow_the_key():
    inputs = textured_event()
    run = lambda k: baselines.forecast_event(jax.random.key(k), inputs, 3, "steps", CONFIG, DATA).members  # noqa: E731
    first, again, other = run(3), run(3), run(4)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first[0], first[1])  # members differ from each other


@pytest.mark.parametrize("name", baselines.BASELINES)
def test_dry_and_near_dry_events_fall_back_without_nan(name):
    dry = np.zeros((DATA.n_inputs, SIZE, SIZE), np.float32)
    near_dry = dry.copy()
    near_dry[:, 10, 10] = 3.0  # one wet pixel: S-PROG / STEPS' cascade statistics are singular
    for inputs in (dry, near_dry):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f = baselines.forecast_event(jax.random.key(0), inputs, 4, name, CONFIG, DATA)
        assert np.all(np.isfinite(f.frames)) and np.all(f.frames >= 0)
        cascade = name in ("sprog", "steps")
        assert bool(f.fallback) == cascade
        assert any(issubclass(w.category, baselines.BaselineFallbackWarning) for w in caught) == cascade
        if cascade:  # the stand-in is the extrapolation forecast
            extrapolation = baselines.forecast_event(jax.random.key(0), inputs, 4, "extrapolation", CONFIG, DATA)
            np.testing.assert_array_equal(f.frames, extrapolation.frames)
        if inputs is dry:
            np.testing.assert_array_equal(f.frames, 0.0)
        if name == "steps":
            assert f.members.shape == (CONFIG.ensemble, 4, SIZE, SIZE)


def test_run_baselines_is_the_per_event_forecast_with_folded_keys():
    inputs = np.stack([textured_event(0), textured_event(1)])
    key = jax.random.key(7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", baselines.BaselineFallbackWarning)
        stacked = baselines.run_baselines(key, inputs, 3, CONFIG, DATA)
    assert tuple(stacked) == CONFIG.baselines
    for name, f in stacked.items():
        assert f.frames.shape == (2, 3, SIZE, SIZE) and f.motion.shape == (2, 2, SIZE, SIZE)
        np.testing.assert_array_equal(f.fallback, [False, False])
        for i in range(2):
            one = baselines.forecast_event(jax.random.fold_in(key, i), inputs[i], 3, name, CONFIG, DATA)
            np.testing.assert_array_equal(f.frames[i], one.frames)
            np.testing.assert_array_equal(f.motion[i], one.motion)
            if name == "steps":
                np.testing.assert_array_equal(f.members[i], one.members)
            else:
                assert f.members is None


def test_run_baselines_does_not_depend_on_workers():
    inputs = np.stack([textured_event(0), textured_event(1)])
    config = dataclasses.replace(CONFIG, baselines=("extrapolation", "steps"))
    start = time.perf_counter()
    pooled = baselines.run_baselines(jax.random.key(2), inputs, 3, dataclasses.replace(config, workers=2), DATA)
    print(f"2 spawned workers: {time.perf_counter() - start:.1f} s")
    local = baselines.run_baselines(jax.random.key(2), inputs, 3, config, DATA)
    for name in config.baselines:
        for a, b in zip(pooled[name], local[name], strict=True):
            np.testing.assert_array_equal(a, b)


def test_unknown_baseline_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown baseline"):
        baselines.forecast_event(jax.random.key(0), textured_event(), 3, "climatology", CONFIG, DATA)
    with pytest.raises(ConfigError, match="unknown"):
        dataclasses.replace(CONFIG, baselines=("persistence", "climatology"))


def reference_endpoint_error(estimate, truth, mask):
    """float64 loop over events, leads and pixels."""
    e, t = mask.shape[:2]
    out = np.full((e, t), np.nan)
    for i in range(e):
        for k in range(t):
            errors = [
                np.hypot(*(estimate[i, k, :, r, c].astype(np.float64) - truth[i, k, :, r, c]))
                for r, c in zip(*np.nonzero(mask[i, k]), strict=True)
            ]
            if errors:
                out[i, k] = np.mean(errors)
    return out


def test_motion_endpoint_error_matches_a_numpy_loop():
    rng = np.random.default_rng(0)
    estimate, truth = rng.normal(0, 2, (2, 2, 3, 2, 8, 8)).astype(np.float32)
    mask = rng.random((2, 3, 8, 8)) < 0.3
    mask[1, 2] = False  # no rainy pixel: not defined
    got = np.asarray(jax.jit(baselines.motion_endpoint_error)(estimate, truth, mask))
    assert got.shape == (2, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_endpoint_error(estimate, truth, mask), rtol=1e-5)
    assert np.isnan(got[1, 2]) and np.sum(np.isnan(got)) == 1
    np.testing.assert_array_equal(baselines.motion_endpoint_error(truth, truth, mask)[0], 0.0)
