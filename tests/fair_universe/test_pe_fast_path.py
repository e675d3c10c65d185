"""The pseudo-experiment hot path equals the straightforward one: prepared pools, blocks, folded
classifier, one-exp soft bins, adaptive Poisson terms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import fair_universe_numpy as ref

from jaxbench.kernels.segments import weighted_column_sums
from jaxbench.tasks.fair_universe import schema
from jaxbench.tasks.fair_universe import task as fu
from jaxbench.tasks.fair_universe.classifier import ScoreNet, classifier_score, make_logit_fn
from jaxbench.tasks.fair_universe.pseudo_experiments import (
    EVENT_BLOCK,
    block_passes,
    draw_counts,
    draw_pseudo_experiment,
    had_pt_order,
    max_event_rate,
    pe_key,
    pool_met_noise,
    prepare_pool,
)
from jaxbench.tasks.fair_universe.systematics import shifted_features
from jaxbench.tasks.fair_universe.templates import bin_fractions, event_features, soft_histogram


def soft_bins_float64(score, edges, smoothing=0.25):
    """The definition of bin_fractions in float64: interp to u, then sigmoid differences."""
    n_bins = len(edges) - 1
    u = np.interp(score, edges, np.linspace(0.0, 1.0, n_bins + 1))
    edge_u = np.concatenate([[-np.inf], np.arange(1, n_bins) / n_bins, [np.inf]])
    above = 1.0 / (1.0 + np.exp(-(u[:, None] - edge_u[None, :]) * (n_bins / smoothing)))
    return above[:, :-1] - above[:, 1:]


@pytest.mark.parametrize("n_bins", [3, 12, 16, 60])  # 60 bins: too steep for one exp per event
def test_bin_fractions_match_the_float64_definition(n_bins):
    rng = np.random.default_rng(n_bins)
    inner = np.sort(rng.uniform(0.05, 0.95, n_bins - 1))
    edges = np.concatenate([[0.0], inner, [1.0]]).astype(np.float32)
    score = np.concatenate([rng.uniform(0, 1, 5000), edges]).astype(np.float32)
    fractions = np.asarray(jax.jit(bin_fractions)(score, edges))
    assert fractions.shape == (len(score), n_bins)
    np.testing.assert_allclose(fractions.sum(axis=1), 1.0, atol=1e-6)
    expected = soft_bins_float64(score.astype(np.float64), edges.astype(np.float64))
    # A float32 u is off by ~6e-8; the sigmoids multiply that by their steepness B / smoothing.
    np.testing.assert_allclose(fractions, expected, atol=5e-7 + 2.5e-8 * n_bins / 0.25)


def test_soft_histogram_equals_the_weighted_sum_of_fractions():
    rng = np.random.default_rng(1)
    n = 3 * EVENT_BLOCK + 17  # not a multiple of the block: padded
    score = rng.uniform(0, 1, n).astype(np.float32)
    counts = rng.poisson(4.0, n).astype(np.float32)
    edges = np.linspace(0, 1, 9).astype(np.float32) ** 0.5
    hist = np.asarray(jax.jit(soft_histogram)(counts, score, edges))
    np.testing.assert_allclose(hist, np.asarray(weighted_column_sums(counts, bin_fractions(score, edges))), rtol=1e-6)
    np.testing.assert_allclose(hist.sum(), counts.sum(), rtol=1e-6)


def test_folded_score_equals_the_flax_network_on_standardised_features():
    rng = np.random.default_rng(2)
    pri = ref.random_pri(rng, 2000)
    features = event_features(jnp.asarray(pri))
    params = {
        "net": ScoreNet((16, 8)).init(jax.random.key(0), features[:2]),
        "mean": jnp.mean(features, axis=0),
        "std": jnp.std(features, axis=0) + 1e-6,
    }
    direct = jax.nn.sigmoid(make_logit_fn((16, 8))(params, features))
    score = classifier_score
    np.testing.assert_allclose(np.asarray(score(params, features)), np.asarray(direct), rtol=1e-5, atol=1e-6)
    blocks = (features[:, :16], features[:, 16:])
    np.testing.assert_allclose(
        np.asarray(score(params, blocks)), np.asarray(score(params, features)), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="columns"):
        score(params, (features[:, :16],))


@pytest.fixture(scope="module")
def small_pool():
    """A pool of 3000 random events (every process), its noise and its prepared form in 4 blocks."""
    rng = np.random.default_rng(3)
    pri = ref.random_pri(rng, 3000)
    pool = schema.EventPool(
        jnp.asarray(pri),
        jnp.asarray(rng.uniform(0.5, 6.0, 3000), jnp.float32),
        jnp.asarray(np.arange(3000) % 4, jnp.int32),
    )
    noise = pool_met_noise(jax.random.key(1), pool)
    return pool, noise, jax.jit(prepare_pool, static_argnames="n_blocks")(pool, noise, had_pt_order(pool), n_blocks=4)


def test_prepared_pool_is_sorted_by_had_pt_and_padded_with_zero_weights(small_pool):
    pool, noise, prepared = small_pool
    n_blocks, block_size = prepared.weights.shape
    assert n_blocks == 4 and block_size % EVENT_BLOCK == 0 and n_blocks * block_size >= pool.num_events
    had_pt = np.asarray(prepared.invariants.pri[schema.PRI["PRI_had_pt"]]).reshape(-1)
    assert np.all(np.diff(had_pt) <= 0)
    index = np.asarray(prepared.source_index).reshape(-1)
    np.testing.assert_array_equal(np.sort(index), np.arange(n_blocks * block_size))
    real = index < pool.num_events
    np.testing.assert_array_equal(np.asarray(prepared.weights).reshape(-1)[real], np.asarray(pool.weights)[index[real]])
    assert np.all(np.asarray(prepared.weights).reshape(-1)[~real] == 0)


@pytest.mark.parametrize(
    "mu, nu", [(1.0, schema.NOMINAL_NUISANCES), (2.5, np.array([1.04, 0.95, 3.0, 1.1, 1.5, 1.005], np.float32))]
)
def test_counts_and_features_equal_draw_pseudo_experiment(small_pool, mu, nu):
    pool, noise, prepared = small_pool
    key = pe_key(jax.random.key(5), 3)
    max_rate = max_event_rate(pool, 3.0)
    pe = draw_pseudo_experiment(key, pool, noise, mu, nu, max_rate)
    counts = np.asarray(draw_counts(key, prepared, mu, nu, max_rate)).reshape(-1)
    index = np.asarray(prepared.source_index).reshape(-1)
    real = index < pool.num_events
    np.testing.assert_array_equal(counts[real], np.asarray(pe.counts)[index[real]])  # the same draw
    assert np.all(counts[~real] == 0) and counts.sum() > 0
    features = np.asarray(shifted_features(prepared.invariants, nu)[0]).reshape(-1, 28)[real]
    expected = np.asarray(event_features(pe.pri))[index[real]]
    np.testing.assert_allclose(features, expected, rtol=2e-5, atol=2e-3)
    # A skipped block draws nothing.
    passes = np.asarray(block_passes(prepared, nu))
    assert np.all(np.asarray(draw_counts(key, prepared, mu, nu, max_rate))[~passes] == 0)


def test_blocks_whose_events_all_fail_are_skipped(small_pool):
    pool, noise, prepared = small_pool
    nu = schema.NOMINAL_NUISANCES.copy()
    passes = np.asarray(block_passes(prepared, nu))
    assert passes[0] and not passes[-1]  # sorted by had pT: the softest taus fill the last block
    nu[0] = 0.5  # tes = 0.5: only taus above 52 GeV pass
    assert np.sum(np.asarray(block_passes(prepared, nu))) < np.sum(passes)


def _straightforward_pes(data, params, conditions, root, max_rate):
    """Histograms of the reference construction: draw_pseudo_experiment, event_features, score, bins."""
    score_fn = classifier_score
    hists = []
    for i in range(conditions.mu_true.shape[0]):
        pe = draw_pseudo_experiment(
            pe_key(root, i), data.pool, data.met_noise, conditions.mu_true[i], conditions.nu_true[i], max_rate
        )
        score = score_fn(params.classifier, event_features(pe.pri))
        hists.append(weighted_column_sums(pe.counts, bin_fractions(score, params.templates.edges)))
    return np.asarray(jnp.stack(hists))


def test_pe_fn_equals_the_straightforward_path_on_sorted_and_unsorted_pools(tiny_estimator):
    from jaxbench import config as configs
    from jaxbench.tasks.fair_universe.estimator import PEShared

    task, data, params = tiny_estimator
    config = configs.override(task.config, {"mu_values": (0.5, 2.0), "n_pe_per_mu": 3})
    conditions = fu.pe_conditions(jax.random.key(3), config)
    root = jax.random.key(5)
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(conditions.mu_true.shape[0]))
    shared = fu.prepare(params, data, config)  # sorted by had pT
    unsorted = PEShared(prepare_pool(data.pool, data.met_noise), shared.templates, shared.classifier, shared.max_rate)
    pe_fn = jax.jit(task.evaluate)
    prepared, plain = pe_fn(shared, conditions, keys), pe_fn(unsorted, conditions, keys)
    expected = _straightforward_pes(data, params, conditions, root, max_event_rate(data.pool, 2.0))
    np.testing.assert_allclose(np.asarray(prepared.hist), expected, rtol=2e-5)
    np.testing.assert_allclose(np.asarray(plain.hist), np.asarray(prepared.hist), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(prepared.n_events), expected.sum(axis=1).round())
    # Sorted and unsorted pools sum the histograms in other orders (~1e-6); the fits then move the
    # interval edges by < 1e-3 of the interval's width.
    for fit in ("profiled", "stat_only"):
        width = np.asarray(getattr(prepared, f"{fit}_p84")) - np.asarray(getattr(prepared, f"{fit}_p16"))
        for edge in ("p16", "p84"):
            name = f"{fit}_{edge}"
            difference = np.abs(np.asarray(getattr(plain, name)) - np.asarray(getattr(prepared, name)))
            assert np.all(difference < 1e-3 * width), (fit, edge, difference / width)
