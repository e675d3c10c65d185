"""Trusted ranges with uncertainty: calibration on simulated scans with known limits, and each rule."""

import numpy as np
import pytest

from jaxbench.studies.ranges import point_errors, trusted_range, trusted_region

D = np.arange(-6, 7, 1.0)


def test_the_68_percent_interval_covers_the_true_limit_68_percent_of_the_time():
    """Coverage 0.85 - 0.06 |d|, target 0.6 (true limits +-4.17), 40 pseudo-experiments per point."""
    rng = np.random.default_rng(11)
    truth, limit, n, draws = 0.85 - 0.06 * np.abs(D), 0.25 / 0.06, 40, 200
    hits = {"lower": 0, "upper": 0}
    for i in range(draws):
        coverage = rng.binomial(n, truth) / n
        result = trusted_range(D, coverage, 0.6, support=np.full(D.size, n), binomial=True, seed=i, n_boot=400)
        for side, sign in (("lower", -1), ("upper", 1)):
            lo, hi = (np.inf * s if v is None else v for v, s in zip(result["fitted"][side]["interval"], (-1, 1)))
            hits[side] += lo <= sign * limit <= hi
    band = 3 * np.sqrt(0.68 * 0.32 / draws)  # 3 binomial standard errors of the hit fraction
    for side, count in hits.items():
        assert abs(count / draws - 0.68) < band, (side, count / draws)


def test_a_quadratic_decay_needs_the_quadratic_trend():
    """0.95 - 0.01 d^2 scanned on |d| <= 3 crosses 0.8 at sqrt(15) = 3.87; a line overstates the range."""
    rng = np.random.default_rng(2)
    d = np.arange(-3, 4, 1.0)
    truth, n = 0.95 - 0.01 * d**2, 400
    hits, extrapolated, linear_limits = 0, 0, []
    for i in range(60):
        value = rng.binomial(n, truth) / n
        common = dict(support=np.full(d.size, n), binomial=True, seed=i, n_boot=300, max_extrapolation=3.0)
        quadratic = trusted_range(d, value, 0.8, trend="quadratic", **common)["fitted"]["upper"]
        lo, hi = quadratic["interval"]
        hits += (lo or 0.0) <= np.sqrt(15) <= (np.inf if hi is None else hi)
        extrapolated += quadratic["extrapolated"]  # the true crossing lies beyond the scanned |d| <= 3
        linear_limits.append(trusted_range(d, value, 0.8, trend="linear", **common)["fitted"]["upper"]["limit"])
    assert 0.5 < hits / 60 < 0.85 and extrapolated > 40
    assert np.median(linear_limits) > np.sqrt(15) + 1.0  # the straight line claims too much


def test_a_limit_far_beyond_the_scan_is_not_claimed():
    value = 0.9 - 0.01 * np.abs(D)  # crosses 0.8 at |d| = 10: 1.7x the scanned 6
    capped = trusted_range(D, value, 0.8, max_extrapolation=1.5)["fitted"]["upper"]
    assert capped["limit"] is None and capped["beyond"]
    free = trusted_range(D, value, 0.8, max_extrapolation=2.0)["fitted"]["upper"]
    assert free["limit"] == pytest.approx(10.0, rel=1e-3) and free["extrapolated"] and not free["beyond"]


def test_the_monotone_trend_interpolates_and_never_extrapolates():
    value = np.where(np.abs(D) <= 2, 0.9, 0.9 - 0.1 * (np.abs(D) - 2))  # flat, then falling: 0.7 at |d| = 4
    result = trusted_range(D, value, 0.7, trend="monotone")
    assert result["fitted"]["upper"]["limit"] == pytest.approx(4.0, abs=0.01)
    assert result["fitted"]["lower"]["limit"] == pytest.approx(-4.0, abs=0.01)
    assert trusted_range(D, value, 0.3, trend="monotone")["fitted"]["upper"]["beyond"]  # never crosses in the scan


def test_measured_ranges_are_judged_within_the_points_errors():
    value = np.array([0.4, 0.58, 0.7, 0.8, 0.7, 0.595, 0.3])  # target 0.6; 0.58 and 0.595 are within 1 error
    d = np.arange(-3, 4, 1.0)
    result = trusted_range(d, value, 0.6, error=np.full(7, 0.03))
    assert result["measured"] == [-2.0, 2.0]
    assert result["measured_significant"] == [-1.0, 1.0]
    assert [p["verdict"] for p in result["points"]] == [
        "bad",
        "compatible",
        "good",
        "good",
        "good",
        "compatible",
        "bad",
    ]
    plain = trusted_range(d, value, 0.6)  # without errors: the plain comparison
    assert plain["measured"] == [-1.0, 1.0]


def test_lower_is_better_metrics_and_the_weighted_fit():
    error_metric = 0.1 + 0.05 * np.abs(D)  # an error that grows: stays <= 0.2 up to |d| = 2
    sigma = 0.01 * (1 + np.abs(D))
    result = trusted_range(D, error_metric, 0.2, higher_is_better=False, error=sigma)
    assert result["fitted"]["upper"]["limit"] == pytest.approx(2.0, abs=1e-3)
    assert result["measured"] == [-2.0, 2.0]
    # The weighted line is numpy's polyfit with weights 1/sigma on the same side's points.
    rng = np.random.default_rng(0)
    noisy = error_metric + sigma * rng.standard_normal(D.size)
    side = D >= 0
    slope, intercept = np.polyfit(D[side], noisy[side], 1, w=1 / sigma[side])
    fitted = trusted_range(D, noisy, 0.2, higher_is_better=False, error=sigma)["fitted"]["upper"]
    np.testing.assert_allclose(fitted["coefficients"], [intercept, slope], rtol=1e-9)
    assert fitted["limit"] == pytest.approx((0.2 - intercept) / slope, rel=1e-3)


def test_binomial_errors_are_agresti_coull():
    value, n = np.array([0.0, 0.5, 1.0]), np.array([40, 40, 10])
    p = (value * n + 2) / (n + 4)
    np.testing.assert_allclose(point_errors(value, n, None, True), np.sqrt(p * (1 - p) / (n + 4)))
    assert np.all(point_errors(value, n, None, True) > 0)


def test_the_2d_region_is_the_connected_set_around_the_centre():
    a, b = np.arange(-2, 3, 1.0), np.arange(-2, 3, 1.0)
    value = 0.9 - 0.1 * (np.abs(a)[:, None] + np.abs(b)[None, :])  # a diamond: >= 0.7 where |a| + |b| <= 2
    value[0, 0] = value[4, 4] = 0.95  # good corners, cut off from the centre by bad cells
    value[0, 1] = value[1, 0] = value[4, 3] = value[3, 4] = 0.5
    result = trusted_region(a, b, value, 0.7)
    trusted = np.array(result["trusted"])
    expected = (np.abs(a)[:, None] + np.abs(b)[None, :]) <= 2
    np.testing.assert_array_equal(trusted, expected)
    assert not trusted[0, 0] and np.array(result["verdict"])[0, 0] == 2  # good, but not reachable
    value[2, 2] = 0.1
    assert not np.array(trusted_region(a, b, value, 0.7)["trusted"]).any()  # bad at the centre: no region


def test_the_ood_study_draws_its_ranges_and_map_after_a_round_trip(tmp_path):
    from jaxbench.studies import analyses, catalogue, load, save
    from jaxbench.studies.table import StudyResult

    coverage = 0.85 - 0.06 * np.abs(D)
    result = analyses.feature_ood(
        lambda b: {"coverage": coverage[b]},
        [f"b{i}" for i in range(D.size)],
        D,
        "tes",
        support=[40] * D.size,
        target={"coverage": (0.6, True)},
        binomial=("coverage",),
    )
    trusted = result.summary["tes"]["trusted_range"]["coverage"]
    assert trusted["fitted"]["upper"]["limit"] == pytest.approx(0.25 / 0.06, rel=1e-3)
    lo, hi = trusted["fitted"]["upper"]["interval"]
    assert lo < 0.25 / 0.06 < hi and trusted["points"][0]["error"] > 0  # binomial errors from the support
    grid = np.arange(-2, 3, 1.0)
    region = trusted_region(grid, grid, 0.9 - 0.05 * (grid[:, None] ** 2 + grid[None, :] ** 2), 0.7)
    summary = {**result.summary, "maps": {"coverage": {**region, "features": ["tes", "jes"]}}}
    save(StudyResult("feature_ood", result.rows, summary), tmp_path / "ood")
    figures = catalogue.FEATURE_OOD.plot(load(tmp_path / "ood"))
    assert [f.name for f in figures] == ["study_feature_ood", "study_feature_ood_trusted", "study_feature_ood_map_0"]
    assert all(f.png.startswith(b"\x89PNG") for f in figures)
