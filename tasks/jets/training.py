"""Training of Particle Transformers: M models on M training sets in one vmapped program, checkpointed.

Loss: the softmax cross-entropy of the two logits (QCD, top), mean over the batch. Optimiser: RAdam (the paper's
choice; its Lookahead wrapper is left out) with decoupled weight decay, a flat learning rate for the first 70% of
the steps and a linear decay to ``final_learning_fraction`` over the rest (the published schedule decays in steps
over the last 30%). Model m's batch at step t is ``batch_size`` positions drawn *with replacement* from its
training set (``subsets[m, :counts[m]]``) with ``fold_in(batch_key_m, t)``: the sizes of a sample-efficiency study
differ (1% of the jets may be fewer than a batch), and the batches do not depend on chunking or resuming. The
features are built from the constituents inside the step (jitted), so no (N, P, P) pair array is ever stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxbench.errors import ConfigError
from jaxbench.kernels.training import checkpointed_loop, empty_history
from jaxbench.records import sha256_arrays
from jaxbench.task import Stage

from . import part
from .config import TrainConfig
from .schema import Jets


class TrainHistory(NamedTuple):
    """Per-step loss and batch accuracy, (M, steps); steps not yet run are NaN."""

    loss: np.ndarray
    accuracy: np.ndarray


def optimizer(settings: TrainConfig) -> optax.GradientTransformation:
    """RAdam + decoupled weight decay; flat learning rate, then a linear decay over the last 30% of the steps."""
    flat = max(1, int(0.7 * settings.steps))
    schedule = optax.join_schedules(
        [
            optax.constant_schedule(settings.learning_rate),
            optax.linear_schedule(
                settings.learning_rate,
                settings.learning_rate * settings.final_learning_fraction,
                max(1, settings.steps - flat),
            ),
        ],
        [flat],
    )
    decay = optax.add_decayed_weights(settings.weight_decay)  # decoupled, scaled by the schedule as in AdamW
    return optax.chain(optax.scale_by_radam(), decay, optax.scale_by_learning_rate(schedule))


def logits(
    weights: Any, config: part.PartConfig, variant: str, p4: jax.Array, key: jax.Array | None = None
) -> jax.Array:
    """(B, 2) logits (QCD, top) of jets p4 (B, P, 4) GeV: the inputs of ``variant`` ("physics" or "raw"), then
    ParT (dropout only with ``key``)."""
    x, mask, pairs = part.inputs(p4, config, variant)
    return part.apply(weights, config, x, mask, pairs, key=key)


def top_probability(weights: Any, config: part.PartConfig, variant: str, p4: jax.Array) -> jax.Array:
    """(B,) softmax probability of the top class (no dropout)."""
    return jax.nn.softmax(logits(weights, config, variant, p4), axis=-1)[:, 1]


def loss_and_accuracy(
    weights: Any, config: part.PartConfig, variant: str, p4: jax.Array, labels: jax.Array, key: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """(mean cross-entropy, batch accuracy) of jets p4 (B, P, 4) with labels (B,) int; dropout from ``key``."""
    z = logits(weights, config, variant, p4, key)
    loss = optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()
    return loss, jnp.mean(jnp.argmax(z, axis=-1) == labels)


class TrainState(NamedTuple):
    """What a resumed run needs: the step () int32, the weights and the optimiser state."""

    step: jax.Array
    weights: Any
    opt_state: Any


def _chunk(state, p4, labels, subset, count, batch_key, *, config, variant, settings, num_steps):
    tx = optimizer(settings)

    def step(carry, _):
        step_index, weights, opt_state = carry
        pick_key, dropout_key = jax.random.split(jax.random.fold_in(batch_key, step_index))
        rows = subset[jax.random.randint(pick_key, (settings.batch_size,), 0, count)]
        (loss, accuracy), grads = jax.value_and_grad(loss_and_accuracy, has_aux=True)(
            weights, config, variant, p4[rows], labels[rows], dropout_key
        )
        updates, opt_state = tx.update(grads, opt_state, weights)
        return (step_index + 1, optax.apply_updates(weights, updates), opt_state), (loss, accuracy)

    (step_index, weights, opt_state), metrics = jax.lax.scan(
        step, (state.step, state.weights, state.opt_state), None, length=num_steps
    )
    return TrainState(step_index, weights, opt_state), metrics


@partial(jax.jit, static_argnames=("config", "variant", "settings", "num_steps"))
def _train_chunk_many(states, p4, labels, subsets, counts, batch_keys, *, config, variant, settings, num_steps):
    chunk = partial(_chunk, config=config, variant=variant, settings=settings, num_steps=num_steps)
    return jax.vmap(chunk, in_axes=(0, None, None, 0, 0, 0))(states, p4, labels, subsets, counts, batch_keys)


def pad_subsets(subsets: list[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(M, width) int32 training positions (each row padded by repeating its first; width defaults to the largest
    set) and (M,) counts."""
    if not subsets or min(len(s) for s in subsets) < 1:
        raise ConfigError("every model needs at least one training jet; raise the training-set sizes.")
    width = max([len(s) for s in subsets] + [width or 0])
    padded = np.stack([np.concatenate([s, np.full(width - len(s), s[0])]) for s in map(np.asarray, subsets)])
    return padded.astype(np.int32), np.array([len(s) for s in subsets], np.int32)


def train_many(
    keys: jax.Array,
    p4: np.ndarray,
    labels: np.ndarray,
    subsets: list[np.ndarray],
    config: part.PartConfig,
    variant: str,
    settings: TrainConfig,
    *,
    width: int | None = None,
    checkpoint_dir: str | Path | None = None,
    callback: Callable[[int, TrainHistory], None] | None = None,
) -> tuple[Any, TrainHistory]:
    """M Particle Transformers of ``variant`` inputs, model m trained on the jets ``subsets[m]`` (positions into
    p4 (N, P, 4) GeV and labels (N,)) with ``keys[m]`` (init and batches), in one vmapped program. With
    ``checkpoint_dir`` the state is saved every ``settings.checkpoint_every`` steps and a call with the same
    directory resumes (same data, sets, config and settings, else ConfigError). ``width`` pads every set to that
    length (one compiled program for sets of several sizes). Returns weights with a leading model axis M and a
    history (M, steps)."""
    num_models = len(subsets)
    if keys.shape != (num_models,):
        raise ConfigError(f"need one key per model: keys {keys.shape} for {num_models} training sets.")
    padded, counts = pad_subsets(subsets, width)
    split = jax.vmap(jax.random.split)(keys)  # (M, 2): init, batches
    weights = jax.vmap(lambda k: part.init(k, config))(split[:, 0])
    tx = optimizer(settings)
    state = TrainState(jnp.zeros((num_models,), jnp.int32), weights, jax.vmap(tx.init)(weights))
    p4_device, labels_device = jnp.asarray(p4, jnp.float32), jnp.asarray(labels, jnp.int32)

    def run_chunk(state, num_steps):
        return _train_chunk_many(
            state,
            p4_device,
            labels_device,
            jnp.asarray(padded),
            jnp.asarray(counts),
            split[:, 1],
            config=config,
            variant=variant,
            settings=settings,
            num_steps=num_steps,
        )

    meta = {
        "model_config": dataclasses.asdict(config),
        "variant": variant,
        "settings": dataclasses.asdict(settings),
        "num_models": num_models,
        "subsets_sha256": sha256_arrays({"subsets": padded, "counts": counts}),
        "data_sha256": sha256_arrays({"p4": np.asarray(p4), "labels": np.asarray(labels)}),
    }
    history = empty_history(TrainHistory, (num_models, settings.steps))
    state, history = checkpointed_loop(
        state, history, run_chunk, settings.steps, settings.checkpoint_every, checkpoint_dir, meta, callback
    )
    return state.weights, history


def unstack(weights: Any, index: int) -> Any:
    """Model ``index`` of weights with a leading model axis."""
    return jax.tree.map(lambda x: x[index], weights)


def train_sets(
    stage: Stage,
    unit: str,
    keys: jax.Array,
    jets: Jets,
    subsets: list[np.ndarray],
    config: part.PartConfig,
    variant: str,
    settings: TrainConfig,
) -> tuple[list[Any], TrainHistory]:
    """Models of ``variant`` on the jets ``subsets`` (positions into ``jets``, each padded to all of them: one
    compiled program for every size), ``settings.models_per_program`` at a time (0: all in one vmap), with a
    progress bar and checkpoints under ``stage.directory(unit + ".m<first>")``. Returns each model's weights (host
    arrays) and the histories (M, steps)."""
    group = settings.models_per_program or len(subsets)
    chunks = -(-settings.steps // settings.checkpoint_every) * -(-len(subsets) // group)
    weights, histories = [], []
    with stage.progress(f"jets: {unit} ({len(subsets)} {variant} models)", chunks) as advance:
        for start in range(0, len(subsets), group):
            stacked, history = train_many(
                keys[start : start + group],
                jets.p4,
                jets.label,
                subsets[start : start + group],
                config,
                variant,
                settings,
                width=jets.num_jets,
                checkpoint_dir=stage.directory(f"{unit}.m{start}"),
                callback=lambda step, h: advance(info=f"mean loss {np.nanmean(h.loss[:, step - 1]):.3g}"),
            )
            weights += [jax.tree.map(np.asarray, unstack(stacked, m)) for m in range(len(history.loss))]
            histories.append(history)
    return weights, TrainHistory(*(np.concatenate(column) for column in zip(*histories)))
