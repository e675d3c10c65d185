"""Every study on a tiny problem whose answer is known in closed form, and study resume."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxbench.errors import ConfigError
from jaxbench.runner import Runner
from jaxbench.studies import analyses, generic, load, save, study_sections

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
    result = analyses.sample_efficiency(
        None,
        4096,
        [16, 64, 256, 1024, 4096 // 2],
        range(48),
        jax.random.key(0),
        train_eval_many=lambda keys, idx: many(keys, jnp.asarray(idx)),
    )
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
    many = analyses.sample_efficiency(
        None,
        512,
        [8, 32, 128],
        [0, 1],
        key,
        train_eval_many=lambda ks, idx: {"slope_error": jnp.stack([_fit_error(x, y, jnp.asarray(i)) for i in idx])},
    )
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

    def study(runner):
        return analyses.sample_efficiency(
            train_eval, 512, [8, 32, 128], [0, 1], jax.random.key(0), stage=runner.stages("study.sample_efficiency")
        )

    quiet = {"progress": False, "log": lambda s: None}
    fail = [False]
    reference = study(Runner(tmp_path / "ref", **quiet))
    fail[0] = True
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        study(Runner(tmp_path / "run", **quiet))
    calls.clear()
    resumed = study(Runner(tmp_path / "run", resume=True, **quiet))
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


# -- 5. rotations -----------------------------------------------------------------------------------
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


# -- 10. feature OOD and the trusted range ----------------------------------------------------------
def test_ood_partition_on_the_methods_jet_energy_bins():
    """8 bins of 236.25 GeV from 550 GeV, a long-tailed energy spectrum, nested ranges of equal total size."""
    rng = np.random.default_rng(3)
    edges = 550.0 + 236.25 * np.arange(9)
    energy = lambda n: np.minimum(550.0 + rng.exponential(300.0, n), 2439.0)  # noqa: E731
    train_energy, test_energy = energy(40_000), energy(10_000)
    ranges = analyses.nested_ranges(8)[:5]
    part = analyses.ood_partition(train_energy, test_energy, edges, ranges, jax.random.key(0))
    in_first = np.sum(train_energy < edges[1])
    assert [len(t) for t in part.train] == [in_first] * 5  # equal totals: the smallest range's population
    for (lo, hi), idx in zip(ranges, part.train):
        assert len(np.unique(idx)) == len(idx) and np.all(
            (train_energy[idx] >= edges[lo]) & (train_energy[idx] < edges[hi])
        )
        # Uniform over the range's events: each bin's share follows its population within the range.
        counts = np.histogram(train_energy[idx], edges[lo : hi + 1])[0]
        population = np.histogram(train_energy, edges[lo : hi + 1])[0]
        expected = len(idx) * population / population.sum()
        assert np.all(np.abs(counts - expected) <= 4 * np.sqrt(expected) + 1), (counts, expected)
    np.testing.assert_array_equal(part.support, np.histogram(test_energy, edges)[0])  # the separate test set
    assert sum(part.support) == 10_000 and all(len(t) == s for t, s in zip(part.test, part.support))
    np.testing.assert_allclose(part.distance[0, :3], [0.0, 236.25 / 2, 236.25 * 1.5])
    np.testing.assert_array_equal(part.bin_offset[2], [0, 0, 0, 1, 2, 3, 4, 5])
    # An empty in-range test bin is an error; an equal total the narrowest range cannot give is too.
    with pytest.raises(ConfigError, match="empty"):
        analyses.ood_partition(train_energy, test_energy[test_energy >= edges[1]], edges, ranges, jax.random.key(0))
    with pytest.raises(ConfigError, match="total"):
        analyses.ood_partition(train_energy, test_energy, edges, ranges, jax.random.key(0), total=in_first + 1)


def test_trusted_range_of_a_linearly_degrading_metric():
    d = np.array([-5.0, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5])
    value = 1.0 - 0.1 * np.abs(d)
    result = analyses.feature_ood(
        lambda b: {"acc": value[b]}, [f"b{i}" for i in range(11)], d, "energy", target={"acc": (0.7, True)}
    )
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
    result = analyses.per_sample_breakdown(
        {"err": err}, {"species": (label, ["H", "C", "O"], None), "feature": (ids, labels, centres)}
    )
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
    (section,) = study_sections(tmp_path, {"correlation": generic.correlation(), "breakdown": generic.breakdown()})
    assert section.title == "Study: Metric correlation" and section.figures and section.tables


# -- attribution ------------------------------------------------------------------------------------------
def test_permutation_importance_of_a_linear_model():
    """y = 3 x0 + x1 (x2 unused), squared error per sample: shuffling x_f raises it by 2 w_f^2 var(x_f)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3)).astype(np.float32)
    y = 3 * x[:, 0] + x[:, 1]
    model = lambda inputs: (3 * inputs[:, 0] + inputs[:, 1] - y) ** 2  # noqa: E731
    result = analyses.permutation_importance(model, x, jax.random.key(1), ["x0", "x1", "x2"], n_repeats=4)
    value, error = result.column("value", "degradation"), result.column("error", "degradation")
    expected = 2 * np.array([9.0, 1.0, 0.0]) * x.var(axis=0)
    np.testing.assert_allclose(value, expected, rtol=0.08, atol=1e-6)
    assert error[2] < 1e-9 and np.all(error[:2] > 0.01)
    assert result.summary["ranking"] == ["x0", "x1", "x2"]
    # A metric where higher is better (minus the error) flips the sign back: positive is still worse.
    flipped = analyses.permutation_importance(
        lambda i: -model(i), x, jax.random.key(1), ["x0", "x1", "x2"], n_repeats=4, higher_is_better=True
    )
    np.testing.assert_allclose(flipped.column("value", "degradation"), value, rtol=1e-6)


# -- ablation ------------------------------------------------------------------------------------------------
def test_variant_study_pairs_variants_on_the_same_subsets():
    """Two 'models' of a noisy mean: the second uses half the data, so its error is sqrt(2) larger."""
    rng = np.random.default_rng(0)
    pool = rng.standard_normal(4000)
    seen = {}

    def estimator(fraction, name):
        def train_eval(key, idx):
            seen.setdefault(name, []).append(tuple(idx))
            used = idx[: max(1, int(len(idx) * fraction))]
            return {"abs_error": abs(pool[used].mean()), "n_used": float(len(used))}

        return train_eval

    variants = {"full": (estimator(1.0, "full"), None), "half": (estimator(0.5, "half"), None)}
    result = analyses.variant_study(variants, 4000, [100, 400], range(30), jax.random.key(0))
    assert seen["full"] == seen["half"]  # paired: the same subsets for every variant
    assert set(result.column("group")) == {"full", "half"}
    diff = result.summary["difference_vs_reference"]["n_used"]["half"]
    assert diff["n=100"]["mean"] == -50 and diff["n=400"]["mean"] == -200 and diff["n=400"]["error"] == 0
    errors = result.summary["difference_vs_reference"]["abs_error"]["half"]["n=400"]
    # E|mean| = sqrt(2 / (pi n)): the half-data variant is worse by (sqrt(2) - 1) sqrt(2 / (pi 400)) on average.
    assert errors["mean"] == pytest.approx((np.sqrt(2) - 1) * np.sqrt(2 / (np.pi * 400)), abs=3 * errors["error"])
    with pytest.raises(ConfigError, match="two variants"):
        analyses.variant_study({"one": variants["full"]}, 4000, [100], [0], jax.random.key(0))
