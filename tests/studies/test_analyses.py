"""Every study on a tiny problem whose answer is known in closed form, and study resume."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxbench.errors import ConfigError
from jaxbench.runner import Run
from jaxbench.studies import analyses, load, save, study_sections


# -- 1. sample efficiency: the error of a least-squares slope falls as 1/sqrt(n) ------------------
TRUE_SLOPE = 2.0


def _pool(n=4096):
    key_x, key_e = jax.random.split(jax.random.key(7))
    x = jax.random.normal(key_x, (n,))
    return x, TRUE_SLOPE * x + jax.random.normal(key_e, (n,))


def _fit_error(x, y, idx):
    xs, ys = x[idx], y[idx]
    return jnp.abs(jnp.sum(xs * ys) / jnp.sum(xs * xs) - TRUE_SLOPE)


def test_sample_efficiency_recovers_the_inverse_square_root_law():
    x, y = _pool()
    many = jax.jit(jax.vmap(lambda k, idx: {"slope_error": _fit_error(x, y, idx)}))
    result = analyses.sample_efficiency(None, 4096, [16, 64, 256, 1024, 4096 // 2], range(48), jax.random.key(0),
                                        train_eval_many=lambda keys, idx: many(keys, jnp.asarray(idx)))
    law = result.summary["fits"]["slope_error"]["power_law"]
    assert abs(law["slope"] + 0.5) < max(4 * law["slope_err"], 0.08), law
    assert len(result.select("slope_error")) == 5 * 48 and set(result.column("support")) == {16, 64, 256, 1024, 2048}


def test_sample_efficiency_subsets_are_nested_and_batched_equals_one_by_one():
    x, y = _pool(512)
    seen = {}

    def one(key, idx):
        seen[(len(idx), int(jax.random.key_data(key)[-1]))] = set(idx.tolist())
        return {"slope_error": _fit_error(x, y, jnp.asarray(idx))}

    key = jax.random.key(3)
    single = analyses.sample_efficiency(one, 512, [8, 32, 128], [0, 1], key)
    many = analyses.sample_efficiency(None, 512, [8, 32, 128], [0, 1], key, train_eval_many=lambda ks, idx: {
        "slope_error": jnp.stack([_fit_error(x, y, jnp.asarray(i)) for i in idx])})
    np.testing.assert_allclose(single.column("value"), many.column("value"), rtol=1e-6)
    by_size = {}
    for (n, _), idx in seen.items():
        by_size.setdefault(n, []).append(idx)
    # For each seed, the 8 indices lie inside its 32, which lie inside its 128.
    for small, big in ((8, 32), (32, 128)):
        assert all(any(s <= b for b in by_size[big]) for s in by_size[small])
    with pytest.raises(ConfigError, match="sizes"):
        analyses.sample_efficiency(one, 512, [1024], [0], key)


def test_study_interrupted_midway_resumes_to_the_same_table(tmp_path):
    x, y = _pool(512)
    calls = []

    def train_eval(key, idx):
        calls.append(len(idx))
        if len(calls) == 4 and fail[0]:
            raise KeyboardInterrupt  # a kill in the middle of the study
        return {"slope_error": _fit_error(x, y, jnp.asarray(idx)), "n": float(len(idx))}

    def study(run):
        return analyses.sample_efficiency(train_eval, 512, [8, 32, 128], [0, 1], run.key,
                                          stage=run.stage_hook("study.sample_efficiency"))

    quiet = {"progress": False, "log": lambda s: None}
    fail = [False]
    reference = study(Run(tmp_path / "ref", "toy-v0", {}, 0, **quiet))
    fail[0] = True
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        study(Run(tmp_path / "run", "toy-v0", {}, 0, **quiet))
    calls.clear()
    resumed = study(Run(tmp_path / "run", "toy-v0", {}, 0, resume=True, **quiet))
    assert len(calls) == 3  # only the units that had not finished were trained again
    assert resumed.to_csv() == reference.to_csv() and resumed.summary == reference.summary


# -- 2. time-domain extrapolation: a drifting signal, a mean predictor -----------------------------
def test_time_window_grid_matches_the_closed_form():
    n = 1000
    signal = np.arange(n) / n  # y(t) = t: a model that predicts the mean of its window errs by the gap

    def train_eval(key, train, test):
        return {"abs_error": abs(signal[test].mean() - signal[train].mean())}

    result = analyses.time_window_grid(train_eval, n, [0.0, 0.3, 0.6], [0.3, 0.6, 0.9], jax.random.key(0))
    expected = {}
    for s in (0.0, 0.3, 0.6):
        for w in (0.3, 0.6, 0.9):
            if s + w <= 0.9 + 1e-9:
                lo, hi = round(s * n), round((s + w) * n)
                expected[(s, w)] = signal[900:].mean() - signal[lo:hi].mean()
    rows = result.select("abs_error")
    assert len(rows) == len(expected) == 6
    for r in rows:
        start = float(r.group.split("=")[1])
        assert r.value == pytest.approx(expected[(start, r.x)], abs=1e-9) and r.support == round(r.x * n)
    assert result.summary["ranking"][0][0] == "[0.6, 0.9)"  # the window next to the test window wins
    assert [0.3, 0.9] in result.summary["skipped"] and result.summary["test_window"] == [900, 1000]
    with pytest.raises(ConfigError, match="ends before"):
        analyses.time_window_grid(train_eval, n, [0.5], [0.6], jax.random.key(0))


# -- 3, 4. frame slices and differential trend ---------------------------------------------------------
def test_frame_slices_match_a_numpy_loop_and_skip_nans():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 4)) + np.arange(4)[None, :]
    values[::7, 2] = np.nan
    result = analyses.frame_slices({"mae": values}, [5, 10, 15, 20])
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
    result = analyses.differential_trend(damped, truth, start, [1, 2, 3])
    np.testing.assert_allclose(result.column("value", "slope"), 0.5, atol=1e-5)
    np.testing.assert_allclose(result.column("value", "pearson"), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.column("value", "sign_agreement"), 1.0)
    opposite = analyses.differential_trend(start[:, None] - (truth - start[:, None]), truth, start, [1, 2, 3])
    np.testing.assert_allclose(opposite.column("value", "sign_agreement"), 0.0)


# -- 5, 6. rotations --------------------------------------------------------------------------------
def test_rotation_scan_flat_for_an_invariant_model_and_a_cosine_otherwise():
    points = jax.random.normal(jax.random.key(0), (200, 3)) + jnp.array([1.5, 0.0, 0.0])[None, :]
    angles = np.linspace(0, 2 * np.pi, 9)

    def evaluate(angle):
        rotated = points @ analyses.rotation_matrix("z", angle).T
        return {"radius": jnp.mean(jnp.linalg.norm(rotated, axis=1)), "mean_x": jnp.mean(rotated[:, 0])}

    result = analyses.rotation_scan(evaluate, angles)
    assert result.summary["metrics"]["radius"]["delta"] < 1e-5
    mx, my = float(points[:, 0].mean()), float(points[:, 1].mean())
    np.testing.assert_allclose(result.column("value", "mean_x"), mx * np.cos(angles) - my * np.sin(angles), atol=1e-5)
    assert result.summary["metrics"]["mean_x"]["delta"] == pytest.approx(2 * math.hypot(mx, my), rel=0.02)


def _morse(positions):
    d = positions[:, :, None, :] - positions[:, None, :, :]
    n = positions.shape[1]
    r = jnp.sqrt(jnp.sum(d**2, axis=-1) + jnp.eye(n)[None])
    pair = (1 - jnp.exp(-(r - 1.2))) ** 2 * (1 - jnp.eye(n))[None]
    return 0.5 * jnp.sum(pair, axis=(1, 2))


def _energy_forces(energy):
    def fn(positions):
        e, grad = jax.value_and_grad(lambda p: jnp.sum(energy(p)))(positions)
        return energy(positions), -grad

    return fn


def test_equivariance_test_passes_a_pair_potential_and_catches_a_broken_one():
    positions = jax.random.normal(jax.random.key(1), (3, 6, 3)) * 1.5
    species = np.array([6, 6, 1, 1, 1, 8])
    good = analyses.equivariance_test(_energy_forces(_morse), positions, species, jax.random.key(2), n_trials=4)
    for kind, errors in good.summary["max_errors"].items():
        assert errors["energy_rel"] < 1e-5 and errors["forces_rel"] < 1e-5, (kind, errors)

    # An energy with a preferred direction: invariant to translations along nothing, broken by rotations.
    def tilted(p):
        return _morse(p) + 0.3 * jnp.sum(p[..., 2], axis=1) ** 2

    bad = analyses.equivariance_test(_energy_forces(tilted), positions, species, jax.random.key(2), n_trials=4)
    assert bad.summary["max_errors"]["rotation"]["energy_rel"] > 1e-2
    assert bad.summary["max_errors"]["permutation"]["energy_rel"] < 1e-5  # still permutation invariant

    def labelled(p):  # breaks the permutation symmetry only
        return _morse(p) + 0.1 * jnp.sum(jnp.arange(p.shape[1])[None, :] * jnp.sum(p**2, axis=-1), axis=1)

    broken = analyses.equivariance_test(_energy_forces(labelled), positions, species, jax.random.key(2), n_trials=4)
    assert broken.summary["max_errors"]["permutation"]["energy_rel"] > 1e-3
    assert broken.summary["max_errors"]["rotation"]["energy_rel"] < 1e-5


def test_random_rotations_are_proper_and_permutations_keep_species():
    for i in range(5):
        r = np.asarray(analyses.random_rotation(jax.random.key(i)))
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)
    species = np.array([1, 6, 1, 8, 6, 1])
    perm = analyses.species_permutation(jax.random.key(0), species)
    np.testing.assert_array_equal(species[perm], species)
    assert sorted(perm) == list(range(6))


# -- 7, 8, 9. fields: centroid, active area, cumulative ---------------------------------------------
def _blobs(shift):
    yy, xx = np.mgrid[:32, :32]
    truth = np.exp(-((yy - 16.0) ** 2 + (xx - 16.0) ** 2) / 6.0)
    pred = np.exp(-((yy - 16.0 - shift[0]) ** 2 + (xx - 16.0 - shift[1]) ** 2) / 6.0)
    return pred, truth


def test_center_of_mass_measures_a_shift_of_k_pixels():
    fields = [_blobs((k, 0)) for k in (0, 1, 2, 3)]
    pred = np.stack([[f[0] for f in fields]] * 2)  # (S=2, T=4, H, W): lead time t shifts by t pixels
    truth = np.stack([[f[1] for f in fields]] * 2)
    result = analyses.center_of_mass(pred, truth, [1, 2, 3, 4], pixel_size=2.0)
    np.testing.assert_allclose(result.column("value", "r_mean"), [0.0, 2.0, 4.0, 6.0], atol=1e-3)
    np.testing.assert_allclose(result.column("value", "dy_mean"), [0.0, 2.0, 4.0, 6.0], atol=1e-3)
    np.testing.assert_allclose(result.column("value", "dx_mean"), 0.0, atol=1e-3)


@pytest.mark.parametrize("mode", analyses.MASK_MODES)
def test_active_area_matches_a_numpy_loop(mode):
    rng = np.random.default_rng(2)
    pred, truth = rng.gamma(1.0, 1.0, (5, 3, 12, 12)), rng.gamma(1.0, 1.0, (5, 3, 12, 12))
    result = analyses.active_area(pred, truth, [1, 2, 3], threshold=1.5, mode=mode)
    o, p = truth >= 1.5, pred >= 1.5
    mask = {"observed": o, "predicted": p, "union": o | p, "intersection": o & p}[mode]
    for t, lead in enumerate([1, 2, 3]):
        m = mask[:, t]
        err = (pred[:, t] - truth[:, t])[m]
        got = {r.metric: r for r in result.rows if r.x == lead}
        assert got["pixels"].value == m.sum() == got["mae"].support
        assert got["mae"].value == pytest.approx(np.abs(err).mean(), rel=1e-5)
        assert got["rmse"].value == pytest.approx(np.sqrt((err**2).mean()), rel=1e-5)
        assert got["bias"].value == pytest.approx(err.mean(), rel=1e-4, abs=1e-6)
    with pytest.raises(ConfigError, match="mode"):
        analyses.active_area(pred, truth, [1, 2, 3], 1.5, mode="everything")


def test_cumulative_csi_histogram_matches_numpy():
    rng = np.random.default_rng(3)
    obs = rng.gamma(0.5, 2.0, (30, 4, 10, 10))
    fc = obs * rng.uniform(0.5, 1.5, obs.shape)
    obs[0, 2] = 0.0  # sample 0 has no event in frame 2: dropped from the cumulative CSI
    fc[0, 2] = 0.0
    csi, keep = analyses.per_sample_csi(fc, obs, 1.0)
    assert not bool(keep[0]) and bool(jnp.all(keep[1:]))
    edges = np.linspace(0, 1, 6)
    result = analyses.cumulative_metric(csi, [1, 2, 3, 4], edges, select=keep, metric="csi")
    csi_np = np.asarray(csi)[np.asarray(keep)]
    for t in range(4):
        ref, _ = np.histogram(csi_np[:, t], edges)
        np.testing.assert_array_equal(result.arrays["histogram"][t], ref)
    assert result.summary["selected_samples"] == 29
    np.testing.assert_allclose(result.summary["cumulative_mean"], csi_np.mean(axis=0), rtol=1e-5)


# -- 10. feature OOD and the trusted range ----------------------------------------------------------
def test_ood_bins_give_equal_counts_and_signed_distances():
    feature = np.concatenate([np.full(50, 0.5), np.full(80, 1.5), np.full(30, 2.5), np.full(40, 3.5)])
    train, tests, distance = ood_split = analyses.ood_bins(feature, [0, 1, 2, 3, 4], [1, 2], jax.random.key(0))
    assert len(train) == 60 and (feature[train] == 1.5).sum() == 30 and (feature[train] == 2.5).sum() == 30
    np.testing.assert_allclose(distance, [-0.5, 0.0, 0.0, 0.5])  # centres vs the range [1, 3]
    assert [len(t) for t in tests] == [50, 50, 0, 40]
    assert not set(train) & set(np.concatenate(tests))
    del ood_split


def test_trusted_range_of_a_linearly_degrading_metric():
    d = np.array([-5.0, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5])
    value = 1.0 - 0.1 * np.abs(d)
    result = analyses.feature_ood(lambda b: {"acc": value[b]}, [f"b{i}" for i in range(11)], d, "energy",
                                  target={"acc": (0.7, True)})
    trusted = result.summary["energy"]["trusted_range"]["acc"]
    assert trusted["fitted"]["lower"]["limit"] == pytest.approx(-3.0)
    assert trusted["fitted"]["upper"]["limit"] == pytest.approx(3.0)
    assert trusted["measured"] == [-3.0, 3.0]
    # A flat metric implies no limit; an error metric (lower is better) works the same way.
    flat = analyses.trusted_range(d, np.full(11, 0.9), 0.7)
    assert flat["fitted"]["upper"]["limit"] is None and flat["measured"] == [-5.0, 5.0]
    error = analyses.trusted_range(d, 0.1 + 0.05 * np.maximum(d, 0), 0.2, higher_is_better=False)
    assert error["fitted"]["upper"]["limit"] == pytest.approx(2.0, rel=0.3) and error["measured"] == [-5.0, 2.0]


# -- 11, 12, 13. breakdown, correlation, stability ------------------------------------------------------
def test_breakdown_matches_group_means():
    rng = np.random.default_rng(4)
    err = rng.exponential(size=300)
    label = rng.integers(0, 3, 300)
    feature = rng.uniform(0, 10, 300)
    ids, labels, centres = analyses.bin_feature(feature, 4)
    result = analyses.per_sample_breakdown({"err": err}, {"species": (label, ["H", "C", "O"], None),
                                                          "feature": (ids, labels, centres)})
    for r in result.select("err", "species"):
        members = err[label == ["H", "C", "O"].index(r.slice)]
        assert r.value == pytest.approx(members.mean(), rel=1e-5) and r.support == members.size
    assert [r.support for r in result.select("err", "feature")] == [75, 75, 75, 75]


def test_metric_correlation_matches_scipy():
    rng = np.random.default_rng(5)
    nu = rng.normal(size=500)
    err = np.abs(nu) + rng.normal(scale=0.3, size=500)
    result = analyses.metric_correlation({"err": err}, {"nu": nu, "abs_nu": np.abs(nu)})
    got = {(r.group, r.metric): r.value for r in result.rows}
    assert got[("err~abs_nu", "pearson")] == pytest.approx(scipy.stats.pearsonr(np.abs(nu), err)[0], rel=1e-4)
    assert got[("err~nu", "spearman")] == pytest.approx(scipy.stats.spearmanr(nu, err)[0], abs=1e-4)
    assert result.summary["strongest_spearman"][0][0] == "err~abs_nu"


def test_prediction_stability_measures_the_per_sample_spread():
    sigma = jnp.array([0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 2.0])

    def predict(key):
        return {"y": 1.0 + sigma * jax.random.normal(key, sigma.shape)}

    result = analyses.prediction_stability(predict, jax.random.key(0), 400)
    np.testing.assert_allclose(result.arrays["y.spread"], np.asarray(sigma), rtol=0.15)
    assert result.summary["outliers"]["y"] == [9]
    same = analyses.prediction_stability(predict, jax.random.key(0), 400, use_vmap=False)
    np.testing.assert_allclose(same.arrays["y.spread"], result.arrays["y.spread"], rtol=1e-5)


# -- storage and report -----------------------------------------------------------------------------
def test_results_round_trip_and_render(tmp_path):
    rng = np.random.default_rng(6)
    result = analyses.metric_correlation({"err": rng.normal(size=50)}, {"nu": rng.normal(size=50)})
    save(result, tmp_path / "studies" / "correlation")
    back = load(tmp_path / "studies" / "correlation")
    assert back.to_csv() == result.to_csv() and back.summary == result.summary
    np.testing.assert_array_equal(back.arrays["metric.err"], result.arrays["metric.err"])
    text = (tmp_path / "studies" / "correlation" / "table.csv").read_text().splitlines()
    assert text[0] == "study,group,slice,x,seed,metric,value,error,support" and len(text) == 1 + len(result.rows)
    (section,) = study_sections(tmp_path)
    assert section.title == "Study: Metric correlation" and section.figures and section.tables
