"""NequIP training: it learns, resumes exactly from checkpoints, and vmaps over models.

Every test uses the TINY config on Morse-labelled ethanol frames (see test_nequip.py) and the same
shapes, so the compiled training chunks are shared between tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_nequip import morse_frames  # tests/ has no __init__.py; pytest puts tests/mlff on sys.path

from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.tasks.mlff import nequip, training

NUM_FRAMES = 200
TRAIN = np.arange(0, 150)
TEST = np.arange(150, 200)
SHORT = dict(steps=30, checkpoint_every=10)  # one compiled chunk shared by the tests below


@pytest.fixture(scope="module")
def data():
    return morse_frames(0, NUM_FRAMES)


@pytest.fixture(scope="module")
def short_run(data):
    """An uninterrupted 30-step run without checkpoints: the reference of the tests below."""
    return training.train(jax.random.key(7), data, TRAIN, nequip.TINY, **SHORT)


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_tiny_training_lowers_held_out_force_error_below_half_the_force_spread(data):
    params, history = training.train(jax.random.key(0), data, TRAIN, nequip.TINY, steps=400, checkpoint_every=200)
    evaluation = training.evaluate(params, data, TEST)
    summary = training.summarise(evaluation, data.species)
    force_spread = 1e3 * float(np.std(data.forces[TEST]))  # meV/Å
    energy_spread = 1e3 * float(np.std(data.energy[TEST]))  # meV
    print(
        f"held-out force MAE {summary['force_mae_mev_per_a']:.0f} meV/Å (force std {force_spread:.0f}); "
        f"energy MAE {summary['energy_mae_mev']:.0f} meV (energy std {energy_spread:.0f})"
    )
    assert np.all(np.isfinite(history.loss))
    assert np.mean(history.loss[-50:]) < 0.2 * np.mean(history.loss[:10])
    assert summary["force_mae_mev_per_a"] < 0.5 * force_spread
    assert summary["energy_mae_mev"] < energy_spread


class _Interrupted(Exception):
    pass


def test_resumed_training_ends_with_the_params_of_an_uninterrupted_run(data, short_run, tmp_path):
    def crash_after_20_steps(step, history):
        if step == 20:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        training.train(
            jax.random.key(7), data, TRAIN, nequip.TINY, checkpoint_dir=tmp_path, callback=crash_after_20_steps, **SHORT
        )
    seen = []
    params, history = training.train(
        jax.random.key(7),
        data,
        TRAIN,
        nequip.TINY,
        checkpoint_dir=tmp_path,
        callback=lambda step, h: seen.append(step),
        **SHORT,
    )
    assert seen == [30]  # it resumed at step 20, not from scratch
    reference_params, reference_history = short_run
    _assert_trees_equal(params, reference_params)
    _assert_trees_equal(history, reference_history)


def test_resuming_with_other_settings_is_a_config_error(data, tmp_path):
    training.train(jax.random.key(7), data, TRAIN, nequip.TINY, checkpoint_dir=tmp_path, **SHORT)
    with pytest.raises(ConfigError, match="settings"):
        training.train(
            jax.random.key(7), data, TRAIN, nequip.TINY, checkpoint_dir=tmp_path, learning_rate=0.02, **SHORT
        )


def test_train_many_equals_training_each_model_separately(data, short_run):
    keys = jnp.stack([jax.random.key(7), jax.random.key(8)])
    index_sets = np.stack([TRAIN, np.arange(50, 200)])
    params, history = training.train_many(keys, data, index_sets, nequip.TINY, **SHORT)
    assert history.loss.shape == (2, 30)
    separate = [short_run, training.train(keys[1], data, index_sets[1], nequip.TINY, **SHORT)]
    worst = 0.0
    for m, (params_m, history_m) in enumerate(separate):
        for a, b in zip(jax.tree.leaves(training.unstack(params, m)), jax.tree.leaves(params_m), strict=True):
            worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(history.loss[m], history_m.loss, rtol=1e-4)
    print(f"max |vmapped - separate| parameter difference: {worst:.1e}")
    # The two models saw different data, so they must differ.
    shifts = np.asarray(params.species_shift)
    assert not np.allclose(shifts[0], shifts[1])


def test_evaluate_gives_per_sample_errors_independent_of_batching(data, short_run):
    params, _ = short_run
    idx = np.array([3, 160, 7, 42, 199])
    evaluation = training.evaluate(params, data, idx, batch_size=2)
    assert evaluation.energy_error_mev.shape == (5,)
    assert evaluation.force_error_mev.shape == (5, 9, 3)
    single = training.evaluate(params, data, idx[3:4], batch_size=2)
    np.testing.assert_allclose(single.force_error_mev[0], evaluation.force_error_mev[3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(single.energy_error_mev[0], evaluation.energy_error_mev[3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(evaluation.force_error_norm_mev, np.linalg.norm(evaluation.force_error_mev, axis=-1))
    # The energy error is prediction minus reference in meV: check it against the total energy.
    energy, forces = nequip.energy_and_forces(params, data.species, data.positions[idx])
    reference_energy, reference_forces = data.energy[idx], data.forces[idx]
    np.testing.assert_allclose(
        evaluation.energy_error_mev, 1e3 * (np.asarray(energy, np.float64) - reference_energy), atol=0.5
    )
    np.testing.assert_allclose(
        evaluation.force_error_mev, 1e3 * (np.asarray(forces, np.float64) - reference_forces), atol=1e-2
    )


def test_force_mae_per_species_averages_the_components_of_each_element():
    species = np.array([6, 1, 1, 8])
    errors = np.zeros((2, 4, 3))
    errors[:, 0] = 3.0  # C
    errors[0, 1] = [1.0, -1.0, 1.0]  # H
    errors[1, 2] = [-2.0, 2.0, 2.0]  # H
    errors[:, 3, 0] = 6.0  # O
    evaluation = training.Evaluation(np.arange(2), np.zeros(2), errors, np.linalg.norm(errors, axis=-1))
    assert training.force_mae_per_species(evaluation, species) == {"H": 0.75, "C": 3.0, "O": 2.0}


def test_bad_inputs_are_explained(data):
    with pytest.raises(DataFormatError, match="outside"):
        training.train(jax.random.key(0), data, np.array([0, NUM_FRAMES]), nequip.TINY, steps=1)
    with pytest.raises(DataFormatError, match="forces must have shape"):
        training.train(jax.random.key(0), data._replace(forces=data.forces[:, :8]), TRAIN, nequip.TINY, steps=1)
    with pytest.raises(ConfigError, match="batch_size"):
        training.train(jax.random.key(0), data, TRAIN[:3], nequip.TINY, steps=1, batch_size=5)
