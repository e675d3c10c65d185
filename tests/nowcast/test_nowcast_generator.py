"""The continuity-equation simulator: reproducible, consistent with its stored motion, physical, cached."""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import numpy as np
import pytest
from pysteps.utils.spectral import rapsd
from reference.nowcast_generator_numpy import translate_uniform

from jaxbench.errors import ConfigError
from jaxbench.tasks.nowcast import advection, generator
from jaxbench.tasks.nowcast.config import DataConfig, SimulatorConfig
from jaxbench.tasks.nowcast.schema import RAIN_MAX_MMH

# 32 x 32 pixels of 4 km, 8 frames of 10 min: a 64-pixel periodic domain
DATA = DataConfig(n_train=4, n_test=2, n_inputs=3, n_targets=5, size=32, pixel_km=4.0, time_step_min=10.0)
SIM = SimulatorConfig(storms=(1, 3), storm_radius_km=(8.0, 16.0), storm_lifetime_min=(40.0, 80.0))
# no shear, waves, wind changes, cells or decay: a pure translation
STILL = dataclasses.replace(SIM, shear_per_h=0.0, wind_variation=0.0, storms=(0, 0), decay_per_h=0.0)
KM_PER_H_PER_PX_STEP = DATA.pixel_km / (DATA.time_step_min / 60.0)  # 24 km/h = 1 px / step
STILL = dataclasses.replace(
    STILL, speed_kmh=(KM_PER_H_PER_PX_STEP, KM_PER_H_PER_PX_STEP), wet_fraction=(0.5, 0.5)
)  # 1 px/step in a random direction
# one cell, no wind, no stratiform rain, 20 frames (190 min) > the 60 min life
LONE_DATA = dataclasses.replace(DATA, n_inputs=6, n_targets=14)
LONE = dataclasses.replace(
    STILL, speed_kmh=(0.0, 0.0), wet_fraction=(0.0, 0.0), storms=(1, 1), storm_peak_mmh=(50.0, 50.0),
    storm_lifetime_min=(60.0, 60.0),
)  # fmt: skip


@pytest.fixture(scope="module")
def events():
    return generator.generate_events(jax.random.key(0), 6, DATA, SIM)


@pytest.fixture(scope="module")
def translated():
    return generator.generate_events(jax.random.key(4), 8, DATA, STILL)


def test_same_key_same_events_other_key_differs(events):
    again = generator.generate_events(jax.random.key(0), 6, DATA, SIM, chunk_size=16)
    np.testing.assert_array_equal(events.frames, again.frames)
    np.testing.assert_array_equal(events.motion, again.motion)
    other = generator.generate_events(jax.random.key(1), 6, DATA, SIM, chunk_size=16)
    assert not np.allclose(events.frames, other.frames)
    assert not np.allclose(events.motion, other.motion)


def test_shapes_dtypes_and_range(events):
    t, n = DATA.n_frames, DATA.size
    assert events.frames.shape == (6, t, n, n) and events.frames.dtype == np.float32
    assert events.motion.shape == (6, t, 2, n, n) and events.motion.dtype == np.float32
    np.testing.assert_array_equal(events.case, np.arange(6, dtype=np.int32))
    assert events.case.dtype == np.int32
    assert np.all(np.isfinite(events.frames)) and np.all(np.isfinite(events.motion))
    assert events.frames.min() >= 0.0 and events.frames.max() <= RAIN_MAX_MMH
    assert np.mean(events.frames > 0) > 0.05  # it rains somewhere


def test_vmapped_chunks_equal_a_per_event_loop(events):
    key = jax.random.key(0)
    for i in range(events.num_events):
        frames, motion = generator.simulate_event(jax.random.fold_in(key, i), DATA, SIM)
        np.testing.assert_allclose(events.frames[i], frames, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(events.motion[i], motion, rtol=1e-5, atol=1e-5)


def test_stored_motion_explains_the_next_frame_away_from_the_cells():
    """advect(frame_t, motion_t) * exp(-decay) is frame_{t+1} (to 0.2 %) where no cell acts, away from the upwind
    edge; its error is under a tenth of persistence's there."""
    decay = math.exp(-SIM.decay_per_h * DATA.time_step_min / 60.0)
    advected_error, persistence_error, pixels = 0.0, 0.0, 0
    for i in range(4):
        frames, motion, weight = map(np.asarray, generator._simulate_jit(jax.random.key(10 + i), DATA, SIM))
        edge = int(np.ceil(np.abs(motion).max())) + 2
        inner = np.zeros(frames.shape[1:], bool)
        inner[edge:-edge, edge:-edge] = True
        for t in range(DATA.n_frames - 1):
            quiet = inner & (weight[t] < 1e-3)
            predicted = np.asarray(advection.advect(frames[t], motion[t])) * decay
            error = np.abs(predicted - frames[t + 1])[quiet]
            assert np.all(error <= 2e-3 * frames[t + 1][quiet] + 1e-3), (i, t, error.max())
            advected_error += error.sum()
            persistence_error += np.abs(frames[t] - frames[t + 1])[quiet].sum()
            pixels += quiet.sum()
    assert pixels > 1000
    assert advected_error < 0.1 * persistence_error


def test_motion_is_divergence_free_smooth_and_time_varying(events):
    """Central differences: |div| is under 2 % of the velocity gradient; the field changes over the event."""
    u, v = events.motion[:, :, 0], events.motion[:, :, 1]
    du_dcol = (u[..., 1:-1, 2:] - u[..., 1:-1, :-2]) / 2
    dv_drow = (v[..., 2:, 1:-1] - v[..., :-2, 1:-1]) / 2
    gradient = np.abs(du_dcol).mean() + np.abs(dv_drow).mean()
    assert gradient > 0
    assert np.abs(du_dcol + dv_drow).mean() < 0.02 * gradient
    assert np.abs(events.motion[:, -1] - events.motion[:, 0]).mean() > 0.01 * np.abs(events.motion).mean()


def _slope(field: np.ndarray) -> float:
    power, freq = rapsd(np.asarray(field, np.float64), fft_method=np.fft, return_freq=True)
    fit = (freq >= 4 / field.shape[0]) & (freq <= 0.4)
    return float(np.polyfit(np.log(freq[fit]), np.log(power[fit]), 1)[0])


@pytest.mark.parametrize("slope", [2.0, 3.0])
def test_initial_noise_has_the_configured_power_law_slope(slope):
    """pysteps' radially averaged power spectrum of the log-rain noise: k^-slope within 0.1 (4 fields of 128^2)."""
    slopes = [_slope(generator.power_law_noise(jax.random.key(i), 128, slope)) for i in range(4)]
    assert abs(np.mean(slopes) + slope) < 0.1, slopes


@pytest.mark.parametrize("slope", [2.0, 3.0])
def test_initial_rain_keeps_the_power_law_roughly(slope):
    """Log-normal rain on half of a 128^2 domain: spectral slope within 0.35 of the noise's (the threshold and
    the exponential flatten it a little)."""
    fields = [
        generator.stratiform_rain(generator.power_law_noise(jax.random.key(i), 128, slope), 0.5, 4.0) for i in range(4)
    ]
    assert abs(np.mean([_slope(f) for f in fields]) + slope) < 0.35


def test_first_frames_follow_the_configured_slope(translated):
    """Simulated frame 0 (32^2 crops of thresholded rain, 8 events): spectral slope within 0.7 of spectral_slope."""
    assert abs(np.mean([_slope(f[0]) for f in translated.frames]) + STILL.spectral_slope) < 0.7


def test_events_both_intensify_and_decay(events):
    """Mean rain of the targets against the inputs: both signs occur across events; cells grow and die."""
    ev = generator.generate_events(jax.random.key(5), 16, DATA, SIM)
    inputs = ev.frames[:, : DATA.n_inputs].mean(axis=(1, 2, 3))
    targets = ev.frames[:, DATA.n_inputs :].mean(axis=(1, 2, 3))
    assert np.any(targets > 1.05 * inputs) and np.any(targets < 0.95 * inputs)


def test_a_lone_cell_grows_to_its_peak_and_dies():
    """No wind, no stratiform rain: the cell's maximum rises to about storm_peak_mmh and falls again."""
    ev = generator.generate_events(jax.random.key(2), 8, LONE_DATA, LONE)
    peaks = ev.frames.max(axis=(2, 3))  # (events, T)
    assert peaks.max() <= 50.0 * (1 + 1e-4) and peaks.max() > 45.0
    rising = np.any(np.diff(peaks, axis=1) > 1.0, axis=1)
    falling = np.any(np.diff(peaks, axis=1) < -1.0, axis=1)
    assert np.any(rising & falling)
    seen = (np.argmax(peaks, axis=1) < LONE_DATA.n_frames - 6) & (peaks.max(axis=1) > 10.0)  # dying takes < 42 min
    assert np.any(seen)
    assert np.all(peaks[seen, -1] < 0.05 * peaks[seen].max(axis=1))  # exp(-4) of the peak by the end of its life


def test_uniform_wind_translates_the_field(translated):
    """1 px/step in a random direction: a float64 semi-Lagrangian reference of the uniform shift matches frame t
    (1e-3 mm/h) wherever the rain came from inside the crop; integer shifts are np.roll."""
    steps = DATA.n_frames - 1
    for frames, motion in zip(translated.frames, translated.motion):
        u, v = float(motion[0, 0, 0, 0]), float(motion[0, 1, 0, 0])
        np.testing.assert_allclose(motion[:, 0], u, atol=1e-6)
        np.testing.assert_allclose(motion[:, 1], v, atol=1e-6)
        assert math.hypot(u, v) == pytest.approx(1.0, rel=1e-5)
        reference = translate_uniform(frames[0], u, v, steps)
        rows, cols = np.mgrid[: DATA.size, : DATA.size]
        # bilinear steps read pixels floor..ceil of the shift back: the footprint after t steps spans t of each
        valid = (rows - steps * math.ceil(v) >= 0) & (rows - steps * math.floor(v) <= DATA.size - 1)
        valid &= (cols - steps * math.ceil(u) >= 0) & (cols - steps * math.floor(u) <= DATA.size - 1)
        assert valid.sum() > 100 and frames[0].max() > 0
        np.testing.assert_allclose(frames[-1][valid], reference[valid], atol=1e-3)
    shift = (-3, 2)  # rows, cols: the reference itself against np.roll
    field = translated.frames[0, 0]
    rolled = np.roll(field, shift, axis=(0, 1))[3:-3, 2:-2]
    np.testing.assert_allclose(translate_uniform(field, 2.0, -3.0, 1)[3:-3, 2:-2], rolled, atol=1e-12)


def test_periodic_advection_rolls_integer_motion():
    field = np.asarray(jax.random.uniform(jax.random.key(0), (12, 16)))
    motion = np.stack([np.full((12, 16), 3.0), np.full((12, 16), -2.0)]).astype(np.float32)
    moved = np.asarray(generator.advect_periodic(field, motion))
    np.testing.assert_allclose(moved, np.roll(field, (-2, 3), axis=(0, 1)), atol=1e-6)


def test_margin_covers_the_fastest_wind():
    steps = DATA.n_frames - 1
    fastest = SIM.speed_kmh[1] * (1 + SIM.wind_variation) / KM_PER_H_PER_PX_STEP
    assert 2 * generator.margin_px(DATA, SIM) >= fastest * steps
    assert generator.domain_px(DATA, dataclasses.replace(SIM, margin=12)) == DATA.size + 24
    assert generator.domain_px(DATA, SIM) % 8 == 0


def test_bad_simulator_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="wind_variation"):
        SimulatorConfig(wind_variation=2.0)
    with pytest.raises(ConfigError, match="wind_direction_deg"):
        SimulatorConfig(wind_direction_deg=(90.0, 0.0))


def test_cache_returns_the_same_events_and_remakes_on_a_config_change(tmp_path, monkeypatch):
    calls = []
    generate = generator.generate_events

    def counted(*args, **kwargs):
        calls.append(args[1:])
        return generate(*args, **kwargs)

    monkeypatch.setattr(generator, "generate_events", counted)
    key = jax.random.key(7)
    first = generator.cached_events(tmp_path, key, 2, DATA, SIM)
    second = generator.cached_events(tmp_path, key, 2, DATA, SIM)
    assert len(calls) == 1
    for name in ("frames", "motion", "case"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    (entry,) = tmp_path.iterdir()
    card = json.loads((entry / "datacard.json").read_text())
    assert {"what", "config", "key", "shapes"} <= set(card)
    assert card["shapes"]["frames"] == [2, DATA.n_frames, DATA.size, DATA.size]
    assert card["config"]["simulator"]["decay_per_h"] == SIM.decay_per_h

    changed = generator.cached_events(tmp_path, key, 2, LONE_DATA, LONE)
    assert len(calls) == 2 and len(list(tmp_path.iterdir())) == 2
    assert changed.frames.shape[1] == LONE_DATA.n_frames
    generator.cached_events(tmp_path, jax.random.key(8), 2, DATA, SIM)  # another key: another entry
    assert len(calls) == 3

    card["shapes"]["frames"] = [3, 1, 1, 1]  # a datacard that disagrees with its arrays is not trusted
    (entry / "datacard.json").write_text(json.dumps(card))
    again = generator.cached_events(tmp_path, key, 2, DATA, SIM)
    assert len(calls) == 4
    np.testing.assert_array_equal(again.frames, first.frames)


def test_default_cache_dir_follows_jaxbench_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXBENCH_CACHE", str(tmp_path))
    assert generator.default_cache_dir() == tmp_path / "nowcast"
