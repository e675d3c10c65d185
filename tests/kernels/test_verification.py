"""Verification scores of rain fields against pysteps 1.21.5 (det_cat_fct, fss, rapsd) and, where pysteps has
none, float64 numpy loops (tests/reference/nowcast_verification_numpy.py), on correlated fields with NaNs."""

import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pysteps.utils.spectral import rapsd as pysteps_rapsd
from pysteps.verification.detcatscores import det_cat_fct_accum, det_cat_fct_init
from pysteps.verification.spatialscores import fss as pysteps_fss
from reference import nowcast_verification_numpy as ref
from scipy.ndimage import gaussian_filter

from jaxbench.errors import ConfigError
from jaxbench.kernels import verification as v

E, T, H, W = 2, 3, 24, 24
THRESHOLDS = (1.0, 4.0)
SETTINGS = dict(thresholds=THRESHOLDS, neighbourhood=3, active_threshold=2.0, fss_scale=4, fss_threshold=1.0)


def rain(rng, shape, sigma=2.0):
    """Log-normal-ish rain (mm/h) with spatially correlated structure and dry areas."""
    z = gaussian_filter(rng.normal(size=shape), sigma=(0,) * (len(shape) - 2) + (sigma, sigma))
    return np.maximum(np.exp(2.5 * z / z.std()) - 1.0, 0.0).astype(np.float32)


@pytest.fixture(scope="module")
def fields():
    """Forecast, observed (E, T, H, W) with NaNs in frame (0, 0) of the forecast and (1, 2) of the observed, and a
    last input (E, H, W)."""
    rng = np.random.default_rng(7)
    forecast, observed, last = rain(rng, (E, T, H, W)), rain(rng, (E, T, H, W)), rain(rng, (E, H, W))
    forecast[0, 0, ::5, ::3] = np.nan
    observed[1, 2, 2::4, ::7] = np.nan
    return forecast, observed, last


@pytest.fixture(scope="module")
def metrics(fields):
    forecast, observed, last = fields
    return {
        p: v.field_metrics(forecast, observed, last, operator=">", nan_policy=p, **SETTINGS) for p in v.NAN_POLICIES
    }


def pysteps_counts(forecast, observed, threshold):
    table = det_cat_fct_init(threshold)
    det_cat_fct_accum(table, forecast, observed)
    return table["hits"], table["misses"], table["false_alarms"]


def test_counts_and_csi_match_pysteps_det_cat_fct_with_nans(fields, metrics):
    forecast, observed, _ = fields
    m = metrics["no_event"]
    for t in THRESHOLDS:
        for e in range(E):
            for k in range(T):
                h, mi, fa = pysteps_counts(forecast[e, k], observed[e, k], t)
                got = [float(m[f"{c}_{t:g}"][e, k]) for c in ("hits", "misses", "false_alarms")]
                assert got == [h, mi, fa]
                assert float(m[f"csi_{t:g}"][e, k]) == pytest.approx(h / (h + mi + fa), rel=1e-6)
    # ">=" is pysteps' ">" at the next float32 below the threshold.
    below = float(np.nextafter(np.float32(1.0), np.float32(-np.inf)))
    counts = v.contingency_counts(forecast, observed, 1.0, ">=")
    h, mi, fa = pysteps_counts(forecast[0, 0], observed[0, 0], below)
    assert [float(c[0, 0]) for c in counts] == [h, mi, fa]


def test_a_nan_pixel_is_no_event_not_dropped():
    forecast = np.array([[np.nan, 5.0]], np.float32)
    observed = np.array([[5.0, np.nan]], np.float32)
    assert [float(c) for c in v.contingency_counts(forecast, observed, 1.0)] == [0.0, 1.0, 1.0]


def test_propagate_makes_every_score_of_a_nan_frame_nan(metrics):
    keep, nan = metrics["no_event"], metrics["propagate"]
    bad = np.zeros((E, T), bool)
    bad[0, 0] = bad[1, 2] = True
    assert set(keep) == set(nan)
    for name in keep:
        assert np.all(np.isnan(nan[name][bad])), name
        np.testing.assert_array_equal(nan[name][~bad], keep[name][~bad], err_msg=name)
    assert np.all(np.isfinite(keep["hits_1"]))


def test_operator_matters_only_at_the_threshold():
    forecast = jnp.asarray([[16.0, 16.0, 20.0, 0.0]], jnp.float32)
    observed = jnp.asarray([[16.0, 0.0, 16.0, 16.0]], jnp.float32)
    assert [float(c) for c in v.contingency_counts(forecast, observed, 16.0, ">=")] == [2.0, 1.0, 1.0]
    assert [float(c) for c in v.contingency_counts(forecast, observed, 16.0, ">")] == [0.0, 0.0, 1.0]
    assert float(v.fss(forecast, observed, 16.0, 1, ">")) != float(v.fss(forecast, observed, 16.0, 1, ">="))


def test_csi_of_a_dry_frame_is_nan_and_pooled_csi_pools_the_counts():
    dry = jnp.zeros((1, 8, 8), jnp.float32)
    assert math.isnan(float(v.csi(*v.contingency_counts(dry, dry, 1.0))[0]))
    # Event 0: 1 hit of 1 event (CSI 1); event 1: 1 hit, 9 misses (CSI 0.1). Mean of CSIs 0.55, pooled 2 / 11.
    hits, misses, false_alarms = (jnp.asarray(c, jnp.float32)[:, None] for c in ([1, 1], [0, 9], [0, 0]))
    assert float(v.pooled_csi(hits, misses, false_alarms)[0]) == pytest.approx(2 / 11)
    assert float(jnp.mean(v.csi(hits, misses, false_alarms))) == pytest.approx(0.55)
    # An event without rain adds nothing; a NaN count (propagated) makes the pooled CSI NaN.
    zero = jnp.zeros((1, 1), jnp.float32)
    more = [jnp.concatenate([c, zero]) for c in (hits, misses, false_alarms)]
    assert float(v.pooled_csi(*more)[0]) == pytest.approx(2 / 11)
    more[0] = more[0].at[2, 0].set(jnp.nan)
    assert math.isnan(float(v.pooled_csi(*more)[0]))


@pytest.mark.parametrize("bad", [dict(operator="=>"), dict(nan_policy="drop"), dict(neighbourhood=0)])
def test_bad_settings_raise_config_error_naming_the_option(fields, bad):
    forecast, observed, last = fields
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=name):
        v.field_metrics(forecast, observed, last, **{**SETTINGS, **bad})


def test_neighbourhood_counts_match_a_max_pool_loop(fields, metrics):
    forecast, observed, _ = fields
    m = metrics["no_event"]
    for t in THRESHOLDS:
        for e, k in [(0, 0), (1, 1), (1, 2)]:
            h, mi, fa = ref.neighbourhood_counts(forecast[e, k], observed[e, k], t, 3, ">")
            got = [float(m[f"n{c}_{t:g}"][e, k]) for c in ("hits", "misses", "false_alarms")]
            assert got == [h, mi, fa]
            assert float(m[f"ncsi_{t:g}"][e, k]) == pytest.approx(h / (h + mi + fa), rel=1e-6)
    # Pooling only widens events: at least as many hits as without it, here strictly more.
    assert np.sum(m["nhits_1"]) > np.sum(m["hits_1"])


@pytest.mark.parametrize("scale", [1, 4, 5])
def test_fss_matches_pysteps(fields, scale):
    forecast, observed, _ = fields
    got = np.asarray(v.fss(forecast, observed, 1.0, scale))
    want = np.array([[pysteps_fss(forecast[e, k], observed[e, k], 1.0, scale) for k in range(T)] for e in range(E)])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert 0 < want.min() and want.max() < 1


def test_fss_of_the_field_metrics_is_the_fss(fields, metrics):
    forecast, observed, _ = fields
    want = [pysteps_fss(forecast[0, k], observed[0, k], 1.0, 4) for k in range(T)]
    # field_metrics ran with ">", pysteps' fss always uses ">=": equal on fields with no pixel exactly at 1.0.
    assert not np.any(forecast == 1.0) and not np.any(observed == 1.0)
    np.testing.assert_allclose(metrics["no_event"]["fss_1_s4"][0], want, rtol=1e-5)


@pytest.mark.parametrize("shape", [(24, 24), (23, 26), (17, 15)])
@pytest.mark.parametrize("normalize", [False, True])
def test_rapsd_matches_pysteps(shape, normalize):
    field = rain(np.random.default_rng(3), shape) + 0.5
    want, freq = pysteps_rapsd(field.astype(np.float64), np.fft, return_freq=True, d=2.0, normalize=normalize)
    got, got_freq = v.rapsd(field, 2.0, normalize=normalize)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(got_freq, freq, rtol=1e-6)


def test_rapsd_vmaps_over_fields():
    fields_ = rain(np.random.default_rng(4), (3, 16, 16))
    spectra, _ = jax.vmap(v.rapsd)(fields_)
    for i in range(3):
        np.testing.assert_allclose(spectra[i], v.rapsd(fields_[i])[0], rtol=1e-6)


def test_continuous_scores_match_numpy_loops(fields, metrics):
    forecast, observed, last = fields
    m = metrics["no_event"]
    for e, k in [(0, 0), (1, 2), (0, 1)]:
        f, o = forecast[e, k], observed[e, k]
        for mode in v.ACTIVE_MODES:
            mae, pixels = ref.active_mae(f, o, 2.0, mode)
            assert float(m[f"active_mae_{mode}"][e, k]) == pytest.approx(mae, rel=1e-5)
            assert float(m[f"active_pixels_{mode}"][e, k]) == pixels
        assert float(m["mae"][e, k]) == pytest.approx(ref.mean(np.abs(f.astype(float) - o)), rel=1e-5)
        assert float(m["mean_forecast"][e, k]) == pytest.approx(ref.mean(f), rel=1e-5)
        assert float(m["trend_observed"][e, k]) == pytest.approx(ref.mean(o) - ref.mean(last[e]), rel=1e-4, abs=1e-5)
        (fy, fx), (oy, ox) = ref.centroid(f), ref.centroid(o)
        assert float(m["com_dy"][e, k]) == pytest.approx(fy - oy, abs=1e-4)
        assert float(m["com_dx"][e, k]) == pytest.approx(fx - ox, abs=1e-4)
    expected = {
        f"{p}{c}_{t:g}" for p in ("", "n") for c in ("hits", "misses", "false_alarms", "csi") for t in THRESHOLDS
    }
    expected |= {f"active_{s}_{mode}" for s in ("mae", "pixels") for mode in v.ACTIVE_MODES}
    expected |= {"mae", "com_dy", "com_dx", "com_r", "mean_forecast", "mean_observed", "fss_1_s4"}
    expected |= {"trend_forecast", "trend_observed"}
    assert set(m) == expected
    assert all(a.shape == (E, T) and a.dtype == jnp.float32 for a in m.values())


def test_centre_of_mass_of_a_blob_shifted_by_3_4_is_5_pixels():
    rows, cols = np.mgrid[:H, :W]
    blob = lambda r, c: 10.0 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 4.0)  # noqa: E731
    observed = blob(8, 8)[None, None].astype(np.float32)
    forecast = blob(11, 12)[None, None].astype(np.float32)
    m = v.field_metrics(forecast, observed, observed[:, 0], **SETTINGS)
    assert float(m["com_dy"][0, 0]) == pytest.approx(3.0, abs=1e-3)
    assert float(m["com_dx"][0, 0]) == pytest.approx(4.0, abs=1e-3)
    assert float(m["com_r"][0, 0]) == pytest.approx(5.0, abs=1e-3)
    dry = v.field_metrics(np.zeros_like(forecast), observed, observed[:, 0], **SETTINGS)
    assert math.isnan(float(dry["com_r"][0, 0])) and math.isnan(float(dry["active_mae_predicted"][0, 0]))
    assert float(dry["trend_forecast"][0, 0]) == pytest.approx(-float(np.mean(observed)), rel=1e-5)


def test_field_metrics_vmaps_over_a_leading_axis(fields):
    forecast, observed, last = fields
    stacked = jax.vmap(lambda f, o, x: v.field_metrics(f, o, x, **SETTINGS))(
        jnp.stack([forecast, observed]), jnp.stack([observed, forecast]), jnp.stack([last, last])
    )
    one = v.field_metrics(observed, forecast, last, **SETTINGS)
    for name in ("csi_4", "nhits_1", "fss_1_s4", "active_mae_union", "com_r"):
        np.testing.assert_allclose(stacked[name][1], one[name], rtol=1e-6, err_msg=name)


def test_the_frame_loop_and_the_whole_batch_agree(fields, metrics):
    forecast, observed, last = fields
    for step in (4, E * T):  # 4 does not divide the 6 frames: the last step is padded
        other = v.field_metrics(forecast, observed, last, operator=">", frames_per_step=step, **SETTINGS)
        for name, value in metrics["no_event"].items():
            np.testing.assert_allclose(other[name], value, rtol=1e-6, err_msg=name)


FRAMES = hnp.arrays(np.float32, (2, 8, 8), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, 8.0, np.nan]))


@given(FRAMES, FRAMES)
def test_swapping_fields_swaps_misses_and_false_alarms_and_csi_stays_in_0_1(a, b):
    ab, ba = v.contingency_counts(a, b, 1.0), v.contingency_counts(b, a, 1.0)
    np.testing.assert_array_equal(ab.hits, ba.hits)
    np.testing.assert_array_equal(ab.misses, ba.false_alarms)
    np.testing.assert_array_equal(ab.false_alarms, ba.misses)
    score = np.asarray(v.csi(*ab))
    assert np.all(np.isnan(score) | ((score >= 0) & (score <= 1)))
    np.testing.assert_array_equal(np.asarray(v.csi(*ba)), score)


@given(FRAMES)
def test_fss_of_identical_fields_is_1(a):
    score = np.asarray(v.fss(a, a, 1.0, 3))
    wet = np.any(a >= 1.0, axis=(-2, -1))
    np.testing.assert_allclose(score[wet], 1.0, rtol=1e-6)
    assert np.all(np.isnan(score[~wet]))
