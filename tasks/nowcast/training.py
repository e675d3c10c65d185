"""Training of the NowcastNet-style model in two checkpointed phases (Adam, optax).

1. The evolution network on the accumulation loss: the rain-weighted L1 of the evolved frames and of the advected
   fields before each residual (NowcastNet scores both) against the targets, plus ``motion_weight`` times the
   rain-weighted motion smoothness (the squared Sobel gradients of u and v, weighted by the target's rain weight).
   The rain weight is NowcastNet's w(x) = min(24, 1 + x), x in mm/h.
2. The generative network, the evolution network frozen: ``ensemble`` noise draws per event, their mean max-pooled
   (kernel ``pool``, stride max(1, pool // 2)) against the max-pooled target (weighted L1), plus ``pixel_weight``
   times the weighted L1 of the ensemble mean itself. NowcastNet's adversarial term is left out. Skipped when
   ``model.generative`` is False.

Losses are computed on rain divided by ``model.RAIN_SCALE_MMH``. The batch of step t is ``batch_size`` events drawn
with replacement with ``fold_in(batch_key, t)`` inside the compiled step (and the noise of phase 2 with
``fold_in(noise_key, t)``), so a resumed run ends with the parameters of an uninterrupted one. Gradients are clipped
to a global norm ``clip_norm`` before Adam.
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

from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.kernels.training import checkpointed_loop, empty_history, step_loop
from jaxbench.records import sha256_arrays

from . import model as nowcast_model
from .config import DataConfig, ModelConfig, TrainConfig

RAIN_WEIGHT_MAX = 24.0
_SOBEL = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], np.float32) / 8.0


class History(NamedTuple):
    """Per-step losses, NaN where not run. evolution_loss = accumulation + motion_weight * motion
    (evolution_steps,); generative_loss = pooled + pixel_weight * pixel (generative_steps,, or 0 steps when the
    model has no generative network)."""

    evolution_loss: np.ndarray
    accumulation: np.ndarray
    motion: np.ndarray
    generative_loss: np.ndarray
    pooled: np.ndarray
    pixel: np.ndarray


class _EvolutionHistory(NamedTuple):
    loss: np.ndarray
    accumulation: np.ndarray
    motion: np.ndarray


class _GenerativeHistory(NamedTuple):
    loss: np.ndarray
    pooled: np.ndarray
    pixel: np.ndarray


class TrainState(NamedTuple):
    """What a resumed phase needs: the step () int32, the trained params (one network's) and the Adam state."""

    step: jax.Array
    params: Any
    opt_state: Any


# -- losses --------------------------------------------------------------------------------------------------------


def rain_weight(rain_mmh: jax.Array) -> jax.Array:
    """NowcastNet's pixel weight min(24, 1 + x) of rain x (mm/h), any shape."""
    return jnp.minimum(RAIN_WEIGHT_MAX, 1.0 + rain_mmh)


def weighted_l1(prediction_mmh: jax.Array, target_mmh: jax.Array) -> jax.Array:
    """Mean of rain_weight(target) * |prediction - target| / RAIN_SCALE_MMH, ()."""
    error = jnp.abs(prediction_mmh - target_mmh) / nowcast_model.RAIN_SCALE_MMH
    return jnp.mean(rain_weight(target_mmh) * error)


def sobel_gradients(field: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sobel derivatives (d/dcol, d/drow) of field (..., H, W) per pixel, on the interior (..., H - 2, W - 2)."""
    h, w = field.shape[-2:]
    d_col = d_row = 0.0
    for i in range(3):
        for j in range(3):
            window = field[..., i : h - 2 + i, j : w - 2 + j]
            d_col = d_col + _SOBEL[i, j] * window
            d_row = d_row + _SOBEL[j, i] * window
    return d_col, d_row


def motion_smoothness(motion: jax.Array, target_mmh: jax.Array) -> jax.Array:
    """Rain-weighted squared Sobel gradient of motion (B, N, 2, H, W) px/step, weighted by rain_weight of the
    targets (B, N, H, W) mm/h on the interior pixels; mean over pixels, summed over (u, v) and both derivatives."""
    d_col, d_row = sobel_gradients(motion)
    weight = rain_weight(target_mmh)[:, :, None, 1:-1, 1:-1]
    return jnp.mean(jnp.sum(weight * (d_col**2 + d_row**2), axis=2))


def max_pool(frames: jax.Array, kernel: int) -> jax.Array:
    """Max-pool of frames (..., H, W) with a ``kernel`` x ``kernel`` window, stride max(1, kernel // 2), VALID."""
    stride = max(1, kernel // 2)
    dims = (1,) * (frames.ndim - 2) + (kernel, kernel)
    strides = (1,) * (frames.ndim - 2) + (stride, stride)
    return jax.lax.reduce_window(frames, -jnp.inf, jax.lax.max, dims, strides, "VALID")


def evolution_loss(
    evolution_params: Any, model: ModelConfig, data: DataConfig, inputs: jax.Array, targets: jax.Array, weight: float
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """(accumulation + weight * motion smoothness, (accumulation, motion smoothness)) of the evolution network
    on inputs (B, n_inputs, H, W) and targets (B, n_targets, H, W) mm/h."""
    params = {"evolution": evolution_params}
    evolution, advected = nowcast_model.evolve_with_advected(params, model, data, inputs)
    accumulation = weighted_l1(evolution.frames, targets) + weighted_l1(advected, targets)
    smoothness = motion_smoothness(evolution.motion, targets)
    return accumulation + weight * smoothness, (accumulation, smoothness)


def generative_loss(
    generative_params: Any,
    evolution_params: Any,
    model: ModelConfig,
    data: DataConfig,
    settings: TrainConfig,
    inputs: jax.Array,
    targets: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """(pooled + pixel_weight * pixel, (pooled, pixel)): the weighted L1 of the max-pooled mean of
    ``settings.ensemble`` draws (draw j with ``fold_in(key, j)``) against the max-pooled targets, and of the mean
    itself; inputs (B, n_inputs, H, W), targets (B, n_targets, H, W) mm/h; the evolution network is frozen."""
    params = {"evolution": evolution_params, "generative": generative_params}
    evolved = jax.lax.stop_gradient(nowcast_model.evolve(params, model, data, inputs).frames)
    draw = lambda k: nowcast_model.generate(params, model, data, inputs, evolved, k)  # noqa: E731
    mean = jnp.mean(jax.vmap(draw)(nowcast_model.member_keys(key, settings.ensemble)), axis=0)
    pooled = weighted_l1(max_pool(mean, settings.pool), max_pool(targets, settings.pool))
    pixel = weighted_l1(mean, targets)
    return pooled + settings.pixel_weight * pixel, (pooled, pixel)


# -- compiled steps -----------------------------------------------------------------------------------------------


def optimizer(settings: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping at ``clip_norm``, then Adam at ``learning_rate``."""
    return optax.chain(optax.clip_by_global_norm(settings.clip_norm), optax.adam(settings.learning_rate))


def _batch(frames: jax.Array, key: jax.Array, size: int, n_inputs: int) -> tuple[jax.Array, jax.Array]:
    rows = jax.random.randint(key, (size,), 0, frames.shape[0])
    batch = frames[rows]
    return batch[:, :n_inputs], batch[:, n_inputs:]


def _apply(tx, loss_fn, state: TrainState, *args):
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, *args)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state), (loss, *parts)


@partial(jax.jit, static_argnames=("model", "data", "settings"))
def _evolution_step(state, frames, batch_key, *, model, data, settings):
    inputs, targets = _batch(frames, jax.random.fold_in(batch_key, state.step), settings.batch_size, data.n_inputs)
    return _apply(optimizer(settings), evolution_loss, state, model, data, inputs, targets, settings.motion_weight)


@partial(jax.jit, static_argnames=("model", "data", "settings"))
def _generative_step(state, evolution_params, frames, batch_key, noise_key, *, model, data, settings):
    inputs, targets = _batch(frames, jax.random.fold_in(batch_key, state.step), settings.batch_size, data.n_inputs)
    key = jax.random.fold_in(noise_key, state.step)
    return _apply(
        optimizer(settings), generative_loss, state, evolution_params, model, data, settings, inputs, targets, key
    )


# -- the trainer ---------------------------------------------------------------------------------------------------


def check_frames(frames: np.ndarray, data: DataConfig) -> None:
    """ConfigError unless frames are (E, n_frames, size, size); DataFormatError unless finite and >= 0."""
    wanted = (data.n_frames, data.size, data.size)
    if frames.ndim != 4 or tuple(frames.shape[1:]) != wanted or frames.shape[0] < 1:
        raise ConfigError(
            f"training frames must be (E, n_inputs + n_targets, size, size) = (E, {', '.join(map(str, wanted))}), "
            f"got {tuple(frames.shape)}; set data.n_inputs, data.n_targets and data.size to the events given."
        )
    if not np.all(np.isfinite(frames)) or np.min(frames) < 0:
        raise DataFormatError("training frames must be finite rain rates >= 0 mm/h; clean NaN / negative pixels.")


def _params_sha256(params: Any) -> str:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return sha256_arrays({jax.tree_util.keystr(path): np.asarray(x) for path, x in leaves})


def train(
    key: jax.Array,
    frames: np.ndarray,
    model: ModelConfig,
    data: DataConfig,
    settings: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    callback: Callable[[str, int, NamedTuple], None] | None = None,
) -> tuple[dict[str, Any], History]:
    """Params and per-step losses of the model trained on events ``frames`` (E, n_inputs + n_targets, H, W) mm/h:
    ``settings.evolution_steps`` steps of phase 1, then ``settings.generative_steps`` of phase 2 (none without a
    generative network). With ``checkpoint_dir`` each phase saves every ``checkpoint_every`` steps under
    ``<dir>/evolution`` and ``<dir>/generative`` and a call with the same directory resumes (same data, config and
    settings, else ConfigError). ``callback(phase, done_steps, phase_history)`` runs after every chunk."""
    frames = np.asarray(frames, np.float32)
    check_frames(frames, data)
    init_key, evolution_batch_key, generative_batch_key, noise_key = jax.random.split(key, 4)
    params = nowcast_model.init(init_key, model, data)
    tx = optimizer(settings)
    device_frames = jnp.asarray(frames)
    statics = {"model": model, "data": data, "settings": settings}
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    meta = {
        "model": dataclasses.asdict(model),
        "data": dataclasses.asdict(data),
        "settings": dataclasses.asdict(settings),
        "frames_sha256": sha256_arrays({"frames": frames}),
        "key_sha256": sha256_arrays({"key": np.asarray(jax.random.key_data(key))}),
    }

    def run_evolution(state, num_steps):  # one program per step: XLA:CPU runs the U-Net 5x slower in a scan
        step = partial(_evolution_step, frames=device_frames, batch_key=evolution_batch_key, **statics)
        return step_loop(step, state, num_steps)

    state = TrainState(jnp.zeros((), jnp.int32), params["evolution"], tx.init(params["evolution"]))
    evolution_history = empty_history(_EvolutionHistory, (settings.evolution_steps,))
    state, evolution_history = checkpointed_loop(
        state,
        evolution_history,
        run_evolution,
        settings.evolution_steps,
        settings.checkpoint_every,
        None if directory is None else directory / "evolution",
        {**meta, "phase": "evolution"},
        None if callback is None else partial(callback, "evolution"),
    )
    params = {**params, "evolution": state.params}

    generative_steps = settings.generative_steps if model.generative else 0
    generative_history = empty_history(_GenerativeHistory, (generative_steps,))
    if generative_steps > 0:

        def run_generative(state, num_steps):
            step = partial(
                _generative_step,
                evolution_params=params["evolution"],
                frames=device_frames,
                batch_key=generative_batch_key,
                noise_key=noise_key,
                **statics,
            )
            return step_loop(step, state, num_steps)

        state = TrainState(jnp.zeros((), jnp.int32), params["generative"], tx.init(params["generative"]))
        state, generative_history = checkpointed_loop(
            state,
            generative_history,
            run_generative,
            generative_steps,
            settings.checkpoint_every,
            None if directory is None else directory / "generative",
            {**meta, "phase": "generative", "evolution_sha256": _params_sha256(params["evolution"])},
            None if callback is None else partial(callback, "generative"),
        )
        params = {**params, "generative": state.params}
    return params, History(*evolution_history, *generative_history)
