"""The NowcastNet-style model and its training: the evolution operator against repeated advection, persistence at
init, stochastic but reproducible predictions, finite gradients through the warp, learning on translating blobs,
and exact resumption from checkpoints. Everything on the TINY config (32 x 32, 4 inputs, 6 targets)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbench.config import override
from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.tasks.nowcast import advection, config, model, training

TINY = config.TINY
M, D, S = TINY.model, TINY.data, TINY.training


def translating_blobs(seed: int, events: int, frames: int = D.n_frames, size: int = D.size) -> np.ndarray:
    """(events, frames, size, size) mm/h: two Gaussian cells (20-40 mm/h, radius 3 px) per event moving at one
    constant velocity of up to 1.5 px/step, on 0.5 mm/h drizzle."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((events, frames, size, size))
    for e in range(events):
        velocity = rng.uniform(-1.5, 1.5, 2)  # (u along columns, v along rows)
        for peak, r0, c0 in zip(rng.uniform(20, 40, 2), rng.uniform(10, 22, 2), rng.uniform(10, 22, 2)):
            for t in range(frames):
                r, c = r0 + velocity[1] * t, c0 + velocity[0] * t
                out[e, t] += peak * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * 3.0**2))
    return (out + 0.5).astype(np.float32)


@pytest.fixture(scope="module")
def params():
    return model.init(jax.random.key(0), M, D)


@pytest.fixture(scope="module")
def inputs():
    return jnp.asarray(translating_blobs(1, 3)[:, : D.n_inputs])


def _perturbed(params, scale: float = 0.3):
    """Params whose output layers are not zero (the evolution network at init predicts nothing)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(5), len(leaves))
    return jax.tree.unflatten(treedef, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


# -- the evolution operator ----------------------------------------------------------------------------------------


def test_zero_motion_and_zero_residual_is_the_persistence_forecast():
    start = jnp.asarray(translating_blobs(2, 1)[0, 0])
    n = D.n_targets
    frames, advected = model.evolution_operator(
        start, jnp.zeros((n, 2, D.size, D.size)), jnp.zeros((n, D.size, D.size))
    )
    np.testing.assert_array_equal(np.asarray(frames), np.broadcast_to(np.asarray(start), frames.shape))
    np.testing.assert_array_equal(np.asarray(advected), np.asarray(frames))


def test_untrained_evolution_network_is_persistence(params, inputs):
    evolution = model.evolve(params, M, D, inputs)
    np.testing.assert_allclose(evolution.frames, np.repeat(inputs[:, -1:], D.n_targets, axis=1), rtol=1e-6)
    assert not np.any(np.asarray(evolution.motion)) and not np.any(np.asarray(evolution.residual))


def test_evolution_operator_equals_repeated_advection_plus_residual():
    rng = np.random.default_rng(3)
    n, size = D.n_targets, D.size
    start = jnp.asarray(translating_blobs(4, 1)[0, 0])
    motion = jnp.asarray(rng.uniform(-2.5, 2.5, (n, 2, size, size)), jnp.float32)  # fractional, some off the grid
    residual = jnp.asarray(rng.normal(0, 2.0, (n, size, size)), jnp.float32)  # negative values hit the relu
    frames, advected = jax.jit(model.evolution_operator)(start, motion, residual)
    x = start
    for t in range(n):  # the reference: one advect + residual + relu per step, in a Python loop
        moved = advection.advect(x, motion[t])
        x = jnp.maximum(moved + residual[t], 0.0)
        np.testing.assert_allclose(advected[t], moved, atol=1e-5)
        np.testing.assert_allclose(frames[t], x, atol=1e-5)
    assert float(jnp.min(frames)) >= 0 and float(jnp.sum(residual < -1)) > 0


def test_gradient_is_cut_between_steps_and_finite_at_the_borders():
    size = D.size
    start = jnp.asarray(translating_blobs(5, 1)[0, 0])
    # integer, half-integer and far off-grid departures (every corner outside): the warp's kinks and borders
    motion = jnp.stack(
        [jnp.full((2, size, size), 1.0), jnp.full((2, size, size), 0.5), jnp.full((2, size, size), 40.0)]
    )
    residual = jnp.zeros((3, size, size))

    def second_frame(m, detach):
        return jnp.sum(model.evolution_operator(start, m, residual, detach)[0][1])

    cut = jax.grad(second_frame)(motion, True)
    full = jax.grad(second_frame)(motion, False)
    assert np.all(np.isfinite(cut)) and np.all(np.isfinite(full))
    assert not np.any(np.asarray(cut[0])) and np.any(np.asarray(full[0]))  # step 1 learns only from its own frame
    assert np.any(np.asarray(cut[1]))


# -- predictions ---------------------------------------------------------------------------------------------------


def test_predictions_have_the_documented_shapes_and_are_finite_and_non_negative(params, inputs):
    b, n, size = inputs.shape[0], D.n_targets, D.size
    predict = jax.jit(lambda p, x, k: model.predict(p, M, D, x, k))
    prediction = predict(_perturbed(params), inputs * 5, jax.random.key(1))  # up to ~200 mm/h
    chex.assert_shape([prediction.frames, prediction.evolved], (b, n, size, size))
    chex.assert_shape(prediction.motion, (b, n, 2, size, size))
    chex.assert_tree_all_finite(prediction)
    assert float(jnp.min(prediction.frames)) >= 0 and float(jnp.min(prediction.evolved)) >= 0


def test_same_key_same_prediction_other_key_another(params, inputs):
    predict = jax.jit(chex.assert_max_traces(model.predict, n=1), static_argnums=(1, 2))
    a = predict(params, M, D, inputs, jax.random.key(1)).frames
    b = predict(params, M, D, inputs, jax.random.key(1)).frames
    c = predict(params, M, D, inputs + 1.0, jax.random.key(2)).frames  # new values and key: no second trace
    d = predict(params, M, D, inputs, jax.random.key(2)).frames
    np.testing.assert_array_equal(a, b)
    assert float(jnp.max(jnp.abs(a - d))) > 1e-3 and c.shape == a.shape


def test_ensemble_members_are_predictions_with_folded_keys(params, inputs):
    key, members = jax.random.key(3), 3
    ensemble = jax.jit(model.predict_ensemble, static_argnums=(1, 2, 5))(params, M, D, inputs, key, members)
    chex.assert_shape(ensemble, (inputs.shape[0], members, D.n_targets, D.size, D.size))
    for m in range(members):
        single = model.predict(params, M, D, inputs, jax.random.fold_in(key, m)).frames
        np.testing.assert_allclose(ensemble[:, m], single, atol=1e-5)
    assert float(jnp.max(jnp.abs(ensemble[:, 0] - ensemble[:, 1]))) > 1e-3


def test_without_the_generative_network_frames_are_the_evolved_ones(inputs):
    deterministic = dataclasses.replace(M, generative=False)
    params = model.init(jax.random.key(0), deterministic, D)
    assert "generative" not in params
    prediction = model.predict(params, deterministic, D, inputs, jax.random.key(1))
    np.testing.assert_array_equal(prediction.frames, prediction.evolved)


def test_inputs_of_the_wrong_shape_are_a_config_error(params):
    with pytest.raises(ConfigError, match="n_inputs"):
        model.evolve(params, M, D, jnp.zeros((1, D.n_inputs + 1, D.size, D.size)))


# -- training ------------------------------------------------------------------------------------------------------


def test_evolution_loss_falls_on_translating_blobs():
    """Held-out accumulation loss of 8 unseen events: 5.84 at init (persistence), 4.72 after 200 steps (measured)."""
    settings = dataclasses.replace(
        S, evolution_steps=200, generative_steps=0, checkpoint_every=200, learning_rate=3e-3, batch_size=4
    )
    trained, history = training.train(jax.random.key(0), translating_blobs(0, 16), M, D, settings)
    held_out = jnp.asarray(translating_blobs(99, 8))

    def accumulation(params):
        inputs, targets = held_out[:, : D.n_inputs], held_out[:, D.n_inputs :]
        return float(training.evolution_loss(params["evolution"], M, D, inputs, targets, 0.0)[1][0])

    before, after = accumulation(model.init(jax.random.key(0), M, D)), accumulation(trained)
    print(f"held-out accumulation loss {before:.3f} -> {after:.3f}")
    assert np.all(np.isfinite(history.evolution_loss)) and history.generative_loss.shape == (0,)
    assert after < 0.88 * before  # also: every gradient was finite and the weights moved


class _Interrupted(Exception):
    pass


def test_resumed_training_equals_an_uninterrupted_run(tmp_path):
    settings = dataclasses.replace(S, evolution_steps=4, generative_steps=4, checkpoint_every=2)
    frames = translating_blobs(6, 4)
    reference, reference_history = training.train(jax.random.key(1), frames, M, D, settings)

    def crash(phase, done, history):
        if (phase, done) == ("generative", 2):
            raise _Interrupted

    with pytest.raises(_Interrupted):
        training.train(jax.random.key(1), frames, M, D, settings, tmp_path, callback=crash)
    seen = []
    params, history = training.train(
        jax.random.key(1), frames, M, D, settings, tmp_path, callback=lambda *a: seen.append(a[:2])
    )
    assert seen == [("generative", 4)]  # the evolution phase was done, the generative one resumed at step 2
    chex.assert_trees_all_equal(params, reference)
    chex.assert_trees_all_equal(history, reference_history)
    assert np.all(np.isfinite(history.generative_loss))
    with pytest.raises(ConfigError, match="different run"):
        training.train(jax.random.key(1), frames, M, D, dataclasses.replace(settings, motion_weight=0.5), tmp_path)


def test_bad_training_frames_and_settings_are_refused():
    frames = translating_blobs(7, 2)
    with pytest.raises(ConfigError, match="n_targets"):
        training.train(jax.random.key(0), frames[:, :-1], M, D, S)
    with pytest.raises(DataFormatError, match=">= 0"):
        training.train(jax.random.key(0), frames - 10.0, M, D, S)
    with pytest.raises(ConfigError, match="clip_norm"):
        override(TINY, {"training.clip_norm": 0.0})
