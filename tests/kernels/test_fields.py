"""Field studies over lead time on small problems whose answers are known in closed form or by a
numpy loop: frame slices, differential trend, centroid shift, active area, cumulative CSI."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from reference import nowcast_fields_numpy as ref

from jaxbench.errors import ConfigError
from jaxbench.kernels import fields
from jaxbench.report import Figure
from jaxbench.studies import table


# -- frame slices and differential trend ----------------------------------------------------------
def test_frame_slices_match_a_numpy_loop_and_skip_nans():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 4)) + np.arange(4)[None, :]
    values[::7, 2] = np.nan
    result = fields.frame_slices({"mae": values}, [5, 10, 15, 20])
    for t, r in enumerate(result.select("mae")):
        column = values[:, t][~np.isnan(values[:, t])]
        assert r.support == column.size and r.x == [5, 10, 15, 20][t]
        assert r.value == pytest.approx(column.mean(), abs=1e-5)
        assert r.error == pytest.approx(column.std() / math.sqrt(column.size), rel=1e-4)
    assert result.summary["trend_vs_lead_time"]["mae"]["slope"] == pytest.approx(0.2, abs=0.05)


def test_differential_trend_of_a_damped_forecast():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(40, 8, 8))
    truth = start[:, None] + rng.normal(size=(40, 3, 1, 1)) * np.ones((1, 1, 8, 8))
    damped = start[:, None] + 0.5 * (truth - start[:, None])
    result = fields.differential_trend(damped, truth, start, [1, 2, 3])
    np.testing.assert_allclose(result.column("value", "slope"), 0.5, atol=1e-5)
    np.testing.assert_allclose(result.column("value", "pearson"), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.column("value", "sign_agreement"), 1.0)
    opposite = fields.differential_trend(start[:, None] - (truth - start[:, None]), truth, start, [1, 2, 3])
    np.testing.assert_allclose(opposite.column("value", "sign_agreement"), 0.0)


def test_differential_trend_counts_the_points_per_quadrant_for_each_end_time():
    # (true change, predicted change) of 13 events at end time 1; end time 2 mirrors them through
    # the origin, and event 0's forecast there is NaN. Dyadic values keep the means exact.
    points = [(0.5, 0.5), (1.0, 0.25), (0.25, 2.0)]  # I: both intensify
    points += [(-0.5, 0.5)]  # II
    points += [(-0.5, -0.5), (-1.0, -0.25), (-2.0, -1.0), (-0.25, -0.75)]  # III: both weaken
    points += [(0.5, -0.5), (1.5, -0.25)]  # IV
    points += [(0.0, 0.5), (0.5, 0.0), (0.0, 0.0)]  # on an axis: in no quadrant
    change = np.array(points)  # (S, 2): true, predicted
    changes = np.stack([change, -change], axis=1)  # (S, T=2, 2)
    start = np.full((13, 4, 4), 2.0)
    truth = start[:, None] + changes[..., 0, None, None]
    pred = start[:, None] + changes[..., 1, None, None]
    pred[0, 1, 0, 0] = np.nan
    result = fields.differential_trend(pred, truth, start, [1, 2])
    quadrants = result.summary["quadrants"]
    assert quadrants["t=1"] == {"I": 3, "II": 1, "III": 4, "IV": 2, "on_axis": 3, "not_finite": 0}
    assert quadrants["t=2"] == {"I": 4, "II": 2, "III": 2, "IV": 1, "on_axis": 3, "not_finite": 1}
    expected = ref.trend_quadrants(result.arrays["delta_true"], result.arrays["delta_pred"])
    assert [quadrants["t=1"], quadrants["t=2"]] == expected


# -- centroid, active area, cumulative ------------------------------------------------------------
def _blobs(shift):
    yy, xx = np.mgrid[:32, :32]
    truth = np.exp(-((yy - 16.0) ** 2 + (xx - 16.0) ** 2) / 6.0)
    pred = np.exp(-((yy - 16.0 - shift[0]) ** 2 + (xx - 16.0 - shift[1]) ** 2) / 6.0)
    return pred, truth


def test_center_of_mass_measures_a_shift_of_k_pixels():
    blobs = [_blobs((k, 0)) for k in (0, 1, 2, 3)]
    pred = np.stack([[f[0] for f in blobs]] * 2)  # (S=2, T=4, H, W): lead time t shifts by t pixels
    truth = np.stack([[f[1] for f in blobs]] * 2)
    result = fields.center_of_mass(pred, truth, [1, 2, 3, 4], pixel_size=2.0)
    np.testing.assert_allclose(result.column("value", "r_mean"), [0.0, 2.0, 4.0, 6.0], atol=1e-3)
    np.testing.assert_allclose(result.column("value", "dy_mean"), [0.0, 2.0, 4.0, 6.0], atol=1e-3)
    np.testing.assert_allclose(result.column("value", "dx_mean"), 0.0, atol=1e-3)


def test_center_of_mass_distance_is_euclidean_for_an_off_axis_shift():
    pred, truth = _blobs((3, 4))  # a 3-4-5 triangle: L1 would give 7 pixels, L-infinity 4
    result = fields.center_of_mass(pred[None, None], truth[None, None], [1], pixel_size=2.0)
    np.testing.assert_allclose(result.arrays["dy"], [[6.0]], atol=1e-3)
    np.testing.assert_allclose(result.arrays["dx"], [[8.0]], atol=1e-3)
    np.testing.assert_allclose(result.arrays["r"], [[10.0]], atol=1e-3)
    assert result.select("r_mean")[0].value == pytest.approx(10.0, abs=1e-3)
    assert result.select("r_median")[0].value == pytest.approx(10.0, abs=1e-3)


@pytest.mark.parametrize("mode", fields.MASK_MODES)
def test_active_area_matches_a_numpy_loop(mode):
    rng = np.random.default_rng(2)
    pred, truth = rng.gamma(1.0, 1.0, (5, 3, 12, 12)), rng.gamma(1.0, 1.0, (5, 3, 12, 12))
    result = fields.active_area(pred, truth, [1, 2, 3], threshold=1.5, mode=mode)
    o, p = truth >= 1.5, pred >= 1.5
    mask = {"observed": o, "predicted": p, "union": o | p, "intersection": o & p}[mode]
    expected = ref.active_mae(pred, truth, 1.5, mode)
    for t, lead in enumerate([1, 2, 3]):
        m = mask[:, t]
        err = (pred[:, t] - truth[:, t])[m]
        got = {r.metric: r for r in result.rows if r.x == lead}
        assert got["active_pixels"].value == m.sum() == got["active_mae_pooled"].support
        assert got["active_mae_pooled"].value == pytest.approx(np.abs(err).mean(), rel=1e-5)
        assert got["active_mae_pooled"].value == pytest.approx(expected["pooled"][t], rel=1e-5)
        assert got["active_mae_per_event"].value == pytest.approx(expected["per_event"][t], rel=1e-5)
        assert got["active_mae_per_event"].support == expected["frames"][t]
        assert got["empty_frames"].value == expected["empty_frames"][t]
        assert got["active_rmse_pooled"].value == pytest.approx(np.sqrt((err**2).mean()), rel=1e-5)
        assert got["active_bias_pooled"].value == pytest.approx(err.mean(), rel=1e-4, abs=1e-6)
    with pytest.raises(ConfigError, match="mode"):
        fields.active_area(pred, truth, [1, 2, 3], 1.5, mode="everything")


def test_active_mae_per_event_and_pooled_differ_when_events_differ_in_active_area():
    # 5 mm/h threshold. Event 0: 50 active pixels, error 1 mm/h each; event 1: 2 active pixels,
    # error 30 mm/h each; event 2: dry (no active pixel). Frame 2 is dry in every event.
    truth, pred = np.zeros((3, 2, 10, 10)), np.zeros((3, 2, 10, 10))
    truth[0, 0, :5], pred[0, 0, :5] = 10.0, 11.0
    truth[1, 0, 0, :2], pred[1, 0, 0, :2] = 20.0, 50.0
    result = fields.active_area(pred, truth, [1, 2], threshold=5.0)
    got = {r.metric: r for r in result.rows if r.x == 1}
    expected = ref.active_mae(pred, truth, 5.0, "union")
    assert expected["per_event"][0] == pytest.approx((1 + 30) / 2)  # each event weighs the same
    assert expected["pooled"][0] == pytest.approx((50 * 1 + 2 * 30) / 52)  # each pixel weighs the same
    assert got["active_mae_per_event"].value == pytest.approx(expected["per_event"][0], rel=1e-6)
    assert got["active_mae_pooled"].value == pytest.approx(expected["pooled"][0], rel=1e-6)
    assert got["active_mae_per_event"].support == 2 and got["active_mae_pooled"].support == 52
    assert got["empty_frames"].value == 1 and got["empty_frames"].support == 3
    assert got["active_mae_per_event"].error == pytest.approx(np.std([1.0, 30.0], ddof=1) / math.sqrt(2), rel=1e-6)
    np.testing.assert_allclose(result.arrays["active_mae"], [[1.0, np.nan], [30.0, np.nan], [np.nan, np.nan]])
    # the dry lead time: no MAE row, three empty frames
    assert [(r.metric, r.value) for r in result.rows if r.x == 2] == [("empty_frames", 3.0)]
    assert result.summary["empty_frames"] == [1, 3]


def test_cumulative_csi_histogram_matches_numpy():
    rng = np.random.default_rng(3)
    obs = rng.gamma(0.5, 2.0, (30, 4, 10, 10))
    fc = obs * rng.uniform(0.5, 1.5, obs.shape)
    obs[0, 2] = 0.0  # sample 0 has no event in frame 2: dropped from the cumulative CSI
    fc[0, 2] = 0.0
    csi, keep = fields.per_sample_csi(fc, obs, 1.0)
    assert not bool(keep[0]) and bool(jnp.all(keep[1:]))
    edges = np.linspace(0, 1, 6)
    result = fields.cumulative_metric(csi, [1, 2, 3, 4], edges, select=keep, metric="csi")
    csi_np = np.asarray(csi)[np.asarray(keep)]
    assert not np.any(csi_np == 1.0)  # np.histogram closes its last bin, ours is half-open: 1.0 is beyond
    for t in range(4):
        ref, _ = np.histogram(csi_np[:, t], edges)
        np.testing.assert_array_equal(result.arrays["histogram"][t], ref)
    assert result.summary["selected_samples"] == 29
    np.testing.assert_allclose(result.summary["cumulative_mean"], csi_np.mean(axis=0), rtol=1e-5)


def _mixed_skill_fields(seed=5, shape=(40, 4, 7, 7)):
    """Rain fields and forecasts whose skill varies per event: CSIs on both sides of 0.45."""
    rng = np.random.default_rng(seed)
    obs = rng.gamma(0.6, 2.0, shape)
    skill = rng.uniform(0, 1, (shape[0], 1, 1, 1))
    fc = skill * obs + (1 - skill) * rng.permuted(obs, axis=-1) * rng.uniform(0.5, 2.0, shape)
    obs[3, 1], fc[3, 1] = 0.0, 0.0  # event 3 is dry in frame 1: not in X_T
    return fc, obs


def test_cumulative_csi_matches_the_method_with_n30_s0015_and_counts_csi_beyond_the_grid():
    fc, obs = _mixed_skill_fields()
    result = fields.cumulative_csi(fc, obs, [1, 2, 3, 4], threshold=1.5)  # the defaults: N = 30, s = 0.015
    expected = ref.cumulative_csi(fc, obs, 1.5, n_bins=30, step=0.015)
    n = expected["selected"]
    assert n == 39 and result.summary["selected_samples"] == n and result.summary["samples"] == 40
    assert (result.summary["n_bins"], result.summary["step"]) == (30, 0.015)
    np.testing.assert_allclose(result.arrays["edges"][[0, -1]], [0.0, 0.45])
    csi = expected["csi"]
    assert np.any(csi >= 0.45) and np.any((csi > 0) & (csi < 0.45))
    assert np.any(np.isclose(csi / 0.015, np.round(csi / 0.015)) & (csi > 0) & (csi < 0.45))  # CSIs on inner edges
    np.testing.assert_array_equal(result.arrays["histogram"], expected["counts"])
    np.testing.assert_array_equal(result.arrays["beyond_grid"], expected["beyond"])
    np.testing.assert_array_equal(result.arrays["below_grid"], 0)
    for t, lead in enumerate([1, 2, 3, 4]):
        group = f"t={lead:g}"
        fractions = result.column("value", "csi_fraction", group)
        np.testing.assert_array_equal(fractions, expected["counts"][t] / n)  # a row's fractions are over |X_T|
        np.testing.assert_array_equal(result.column("support", "csi_fraction", group), expected["counts"][t])
        (beyond,) = result.select("csi_fraction_beyond_grid", group)
        assert beyond.value == expected["beyond"][t] / n and beyond.support == expected["beyond"][t] > 0
        assert result.summary["beyond_grid"][t] == expected["beyond"][t]
        assert fractions.sum() + beyond.value == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(result.summary["cumulative_mean"], csi.mean(axis=0), rtol=1e-5)


def test_cumulative_metric_counts_values_outside_its_grid_and_nans():
    values = np.array([[-0.5, 0.0], [0.1, 0.25], [0.3, 0.3], [np.nan, 7.0], [0.05, 0.2]])
    result = fields.cumulative_metric(values, [1, 2], [0.0, 0.1, 0.2, 0.3], metric="m")
    # half-open bins: 0.1 opens [0.1, 0.2) and 0.3, the last edge, is beyond the grid
    np.testing.assert_array_equal(result.arrays["histogram"], [[1, 1, 0], [1, 0, 2]])
    assert result.summary["below_grid"] == [1, 0] and result.summary["beyond_grid"] == [1, 2]
    assert result.summary["missing"] == [1, 0]
    np.testing.assert_array_equal(result.column("value", "m_fraction_below_grid"), [0.2, 0.0])
    np.testing.assert_array_equal(result.column("value", "m_fraction_beyond_grid"), [0.2, 0.4])
    np.testing.assert_array_equal(result.column("value", "m_fraction", "t=2"), [0.2, 0.0, 0.4])
    with pytest.raises(ConfigError, match="increasing"):
        fields.cumulative_metric(values, [1, 2], [0.0, 0.2, 0.1])


# -- study kinds ----------------------------------------------------------------------------------
def _small_results():
    """One small result per field study kind, keyed by the kind's name."""
    rng = np.random.default_rng(4)
    leads = [1, 2, 3]
    truth = rng.gamma(1.0, 1.0, (6, 3, 8, 8))
    pred = truth * rng.uniform(0.5, 1.5, truth.shape)
    return {
        "frame_slices": fields.frame_slices({"mae": np.abs(pred - truth).mean(axis=(2, 3))}, leads),
        "differential_trend": fields.differential_trend(pred, truth, truth[:, 0], leads),
        "center_of_mass": fields.center_of_mass(pred, truth, leads),
        "active_area": fields.active_area(pred, truth, leads, threshold=1.0),
        "cumulative": fields.cumulative_csi(pred, truth, leads, threshold=1.0),
    }


def test_every_field_study_kind_draws_its_result():
    results = _small_results()
    assert set(fields.FIELD_STUDIES) == set(results)
    for name, info in fields.FIELD_STUDIES.items():
        assert info.name == name == results[name].study and info.title and info.question.endswith("?")
        figures = info.plot(results[name])
        assert figures and all(isinstance(f, Figure) for f in figures), name
        assert all(f.png.startswith(b"\x89PNG") and f.caption for f in figures), name


def test_every_field_study_result_survives_saving(tmp_path):
    for name, result in _small_results().items():
        loaded = table.load(table.save(result, tmp_path / name))
        assert loaded.to_csv() == result.to_csv() and loaded.summary == result.summary, name
        assert set(loaded.arrays) == set(result.arrays), name
