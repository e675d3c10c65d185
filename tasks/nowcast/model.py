"""NowcastNet-style nowcasting model (Zhang et al., Nature 2023) in flax linen: evolution network + evolution operator,
then a noise-driven generative U-Net.

- Evolution network: a U-Net on the ``n_inputs`` observed frames predicting, for every target frame t, a motion
  field v_t (2, H, W) in pixels per step (pysteps' order: u along columns, v along rows) and an intensity residual
  s_t (H, W). One shared decoder emits all 3 x n_targets channels (NowcastNet has two decoders, one per field; one
  halves the decoder's cost on CPU). Its last convolution starts at zero, so an untrained network is persistence
  (``OUT_SCALE``).
- Evolution operator: x_t = relu(advect(stop_gradient(x_{t-1}), v_t) + s_t) from x_0 = the last input, with the
  semi-Lagrangian step of :mod:`.advection`. As in NowcastNet the gradient is cut between steps (each step learns
  from its own target only), which keeps the accumulation loss stable over 20 steps; the relu keeps rain >= 0.
- Generative network: a U-Net on the normalised inputs and evolved frames; latent noise z (``noise_channels`` at
  1/8 of the resolution, standard normal, one draw per event from ``fold_in(key, event)``) is projected and joined
  at the bottleneck; the output is a correction of the evolved frames, ``relu(evolved + correction)``.

Rain enters and leaves in mm/h; inside, every field is divided by ``RAIN_SCALE_MMH`` (a linear scale, so advection
commutes with it and the operator can run in either unit). Layout: arrays are (B, C, H, W) outside, NHWC inside.
Written with linen rather than nnx for the reason of the jets ParT (:mod:`jaxbench.tasks.jets.part`): ``init``
returns a plain params pytree and everything else is a pure function of it, which is what optax states, orbax
checkpoints and ``vmap`` over keys want, with no module objects to split and merge.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxbench.errors import ConfigError

from . import advection
from .config import DataConfig, ModelConfig

#: Rain rates are divided by this inside the networks (mm/h).
RAIN_SCALE_MMH = 10.0
#: The latent noise lives at 1 / NOISE_STRIDE of the frame size.
NOISE_STRIDE = 8


class Evolution(NamedTuple):
    """The evolution network's forecast. frames (B, n_targets, H, W) mm/h; motion (B, n_targets, 2, H, W) px/step
    (u, v), motion[:, t] moves frame t - 1 to t; residual (B, n_targets, H, W) mm/h added after advection."""

    frames: jax.Array
    motion: jax.Array
    residual: jax.Array


class Prediction(NamedTuple):
    """The model's forecast. frames (B, n_targets, H, W) mm/h (the generative network's, or ``evolved`` when
    ``model.generative`` is False); evolved (B, n_targets, H, W) mm/h; motion (B, n_targets, 2, H, W) px/step."""

    frames: jax.Array
    evolved: jax.Array
    motion: jax.Array


# -- the evolution operator ----------------------------------------------------------------------------------------


def evolution_operator(
    start: jax.Array, motion: jax.Array, residual: jax.Array, detach: bool = True
) -> tuple[jax.Array, jax.Array]:
    """x_t = relu(advect(x_{t-1}, v_t) + s_t) from x_0 = ``start`` (H, W), for motion (N, 2, H, W) px/step and
    residual (N, H, W) (same unit as ``start``). Returns (frames (N, H, W), advected (N, H, W): advect(x_{t-1}, v_t)
    before the residual). ``detach`` cuts the gradient between steps (NowcastNet's choice)."""

    def step(previous, fields):
        v, s = fields
        advected = advection.advect(jax.lax.stop_gradient(previous) if detach else previous, v)
        current = jax.nn.relu(advected + s)
        return current, (current, advected)

    _, (frames, advected) = jax.lax.scan(step, start, (motion, residual))
    return frames, advected


# -- networks ------------------------------------------------------------------------------------------------------


class _Block(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        x = nn.silu(nn.Conv(self.features, (3, 3))(x))
        return nn.silu(nn.Conv(self.features, (3, 3))(x))


def _upsample(x: jax.Array, factor: int) -> jax.Array:
    return jnp.repeat(jnp.repeat(x, factor, axis=-3), factor, axis=-2)


class _UNet(nn.Module):
    """``levels`` times (block, 2x2 average pool), a bottleneck block (``extra`` joined before it), then nearest
    upsampling, skip concatenation and a block per level; a 1x1 convolution "out" to ``out_features``."""

    channels: int
    levels: int
    out_features: int

    @nn.compact
    def __call__(self, x, extra=None):
        skips = []
        for level in range(self.levels):
            x = _Block(self.channels * 2**level)(x)
            skips.append(x)
            x = nn.avg_pool(x, (2, 2), (2, 2))
        if extra is not None:
            x = jnp.concatenate([x, extra], axis=-1)
        x = _Block(self.channels * 2**self.levels)(x)
        for level in reversed(range(self.levels)):
            x = jnp.concatenate([_upsample(x, 2), skips[level]], axis=-1)
            x = _Block(self.channels * 2**level)(x)
        return nn.Conv(self.out_features, (1, 1), name="out")(x)


class _EvolutionNet(nn.Module):
    model: ModelConfig
    n_targets: int

    @nn.compact
    def __call__(self, inputs):  # (B, H, W, n_inputs) normalised -> motion (B, N, 2, H, W), residual (B, N, H, W)
        n = self.n_targets
        out = _UNet(self.model.evolution_channels, self.model.levels, 3 * n)(inputs)
        b, h, w, _ = out.shape
        motion = out[..., : 2 * n].reshape(b, h, w, n, 2).transpose(0, 3, 4, 1, 2)
        return motion, out[..., 2 * n :].transpose(0, 3, 1, 2)


class _GenerativeNet(nn.Module):
    model: ModelConfig
    n_targets: int

    @nn.compact
    def __call__(self, inputs, evolved, noise):  # NHWC normalised; noise (B, H/8, W/8, noise_channels)
        m = self.model
        bottleneck = m.generative_channels * 2**m.levels
        extra = _upsample(nn.silu(nn.Conv(bottleneck, (3, 3))(noise)), 2 ** (3 - m.levels))
        x = jnp.concatenate([inputs, evolved], axis=-1)
        correction = _UNet(m.generative_channels, m.levels, self.n_targets)(x, extra)
        return jax.nn.relu(evolved + correction)


# -- public functions ----------------------------------------------------------------------------------------------


def _check_inputs(model: ModelConfig, data: DataConfig, inputs: jax.Array) -> None:
    wanted = (data.n_inputs, data.size, data.size)
    if inputs.ndim != 4 or tuple(inputs.shape[1:]) != wanted:
        raise ConfigError(
            f"model inputs must be (B, n_inputs, size, size) = (B, {', '.join(map(str, wanted))}), got "
            f"{tuple(inputs.shape)}; set data.n_inputs / data.size to the frames given."
        )
    if data.size % 2**model.levels != 0:
        raise ConfigError(f"data.size {data.size} must be a multiple of 2**model.levels = {2**model.levels}.")


def _nhwc(x: jax.Array) -> jax.Array:
    return x.transpose(0, 2, 3, 1)


def _noise_shape(model: ModelConfig, data: DataConfig) -> tuple[int, int, int]:
    return (data.size // NOISE_STRIDE, data.size // NOISE_STRIDE, model.noise_channels)


def _lecun_normal_from_one_draw(key: jax.Array, shapes: Any, out_scale: float) -> Any:
    """Params of the structure ``shapes``: kernels N(0, 1 / fan_in) (LeCun normal), the "out" layer's times
    ``out_scale``, biases 0; all from one normal draw (flax's per-layer initialisers compile for ~10 s on CPU)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    sizes = [math.prod(leaf.shape) for _, leaf in leaves]
    draw = jax.random.normal(key, (sum(sizes),))
    params, start = [], 0
    for (path, leaf), size in zip(leaves, sizes):
        names = [getattr(p, "key", None) for p in path]
        if names[-1] == "kernel":
            scale = (out_scale if names[-2] == "out" else 1.0) / math.sqrt(math.prod(leaf.shape[:-1]))
            params.append(scale * draw[start : start + size].reshape(leaf.shape))
        else:
            params.append(jnp.zeros(leaf.shape, leaf.dtype))
        start += size
    return jax.tree_util.tree_unflatten(treedef, params)


#: Scale of each network's output layer at init: the evolution network starts as persistence (zero motion and
#: residual), the generative one as a small noise-driven correction of the evolved frames.
OUT_SCALE = {"evolution": 0.0, "generative": 0.1}


@partial(jax.jit, static_argnames=("model", "data"))
def init(key: jax.Array, model: ModelConfig, data: DataConfig) -> dict[str, Any]:
    """Initial params {"evolution": ..., "generative": ...} (no "generative" when ``model.generative`` is False)."""
    evolution_key, generative_key = jax.random.split(key)
    frames = jnp.zeros((1, data.size, data.size, data.n_inputs))
    net = _EvolutionNet(model, data.n_targets)
    shapes = jax.eval_shape(net.init, evolution_key, frames)["params"]
    params = {"evolution": _lecun_normal_from_one_draw(evolution_key, shapes, OUT_SCALE["evolution"])}
    if model.generative:
        evolved = jnp.zeros((1, data.size, data.size, data.n_targets))
        noise = jnp.zeros((1, *_noise_shape(model, data)))
        net = _GenerativeNet(model, data.n_targets)
        shapes = jax.eval_shape(net.init, generative_key, frames, evolved, noise)["params"]
        params["generative"] = _lecun_normal_from_one_draw(generative_key, shapes, OUT_SCALE["generative"])
    return params


def evolve(params: dict[str, Any], model: ModelConfig, data: DataConfig, inputs: jax.Array) -> Evolution:
    """The evolution network and operator on inputs (B, n_inputs, H, W) mm/h: frames and residual
    (B, n_targets, H, W) mm/h, motion (B, n_targets, 2, H, W) px/step."""
    return evolve_with_advected(params, model, data, inputs)[0]


def evolve_with_advected(
    params: dict[str, Any], model: ModelConfig, data: DataConfig, inputs: jax.Array
) -> tuple[Evolution, jax.Array]:
    """``evolve`` plus the advected fields before each residual (B, n_targets, H, W) mm/h (the accumulation loss
    scores both)."""
    _check_inputs(model, data, inputs)
    normalised = inputs / RAIN_SCALE_MMH
    motion, residual = _EvolutionNet(model, data.n_targets).apply({"params": params["evolution"]}, _nhwc(normalised))
    frames, advected = jax.vmap(evolution_operator)(normalised[:, -1], motion, residual)
    scale = RAIN_SCALE_MMH
    return Evolution(frames * scale, motion, residual * scale), advected * scale


def noise(key: jax.Array, model: ModelConfig, data: DataConfig, batch: int) -> jax.Array:
    """Latent noise (batch, H/8, W/8, noise_channels), event i's from ``fold_in(key, i)`` (independent of batch)."""
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(batch))
    return jax.vmap(lambda k: jax.random.normal(k, _noise_shape(model, data)))(keys)


def generate(
    params: dict[str, Any], model: ModelConfig, data: DataConfig, inputs: jax.Array, evolved: jax.Array, key: jax.Array
) -> jax.Array:
    """The generative network's frames (B, n_targets, H, W) mm/h from inputs (B, n_inputs, H, W) and evolved frames
    (B, n_targets, H, W) mm/h, with the noise of ``key`` (event i: ``fold_in(key, i)``)."""
    if "generative" not in params:
        raise ConfigError("these params have no generative network (model.generative was False at init).")
    z = noise(key, model, data, inputs.shape[0])
    net = _GenerativeNet(model, data.n_targets)
    out = net.apply(
        {"params": params["generative"]}, _nhwc(inputs / RAIN_SCALE_MMH), _nhwc(evolved / RAIN_SCALE_MMH), z
    )
    return out.transpose(0, 3, 1, 2) * RAIN_SCALE_MMH


def predict(
    params: dict[str, Any], model: ModelConfig, data: DataConfig, inputs: jax.Array, key: jax.Array
) -> Prediction:
    """Forecast of inputs (B, n_inputs, H, W) mm/h: frames (B, n_targets, H, W) mm/h with the noise of ``key``
    (deterministic, frames = evolved, when ``model.generative`` is False), the evolved frames and the motion."""
    evolution = evolve(params, model, data, inputs)
    if not model.generative:
        return Prediction(evolution.frames, evolution.frames, evolution.motion)
    frames = generate(params, model, data, inputs, evolution.frames, key)
    return Prediction(frames, evolution.frames, evolution.motion)


def member_keys(key: jax.Array, members: int) -> jax.Array:
    """(members,) keys of an ensemble: member m's is ``fold_in(key, m)``."""
    return jax.vmap(lambda m: jax.random.fold_in(key, m))(jnp.arange(members))


def predict_ensemble(
    params: dict[str, Any], model: ModelConfig, data: DataConfig, inputs: jax.Array, key: jax.Array, members: int
) -> jax.Array:
    """(B, members, n_targets, H, W) mm/h forecasts of inputs (B, n_inputs, H, W) mm/h; member m is
    ``predict(..., fold_in(key, m)).frames`` (the evolution runs once; the generative network is vmapped over keys)."""
    evolution = evolve(params, model, data, inputs)
    if not model.generative:
        return jnp.broadcast_to(evolution.frames[:, None], (inputs.shape[0], members, *evolution.frames.shape[1:]))
    one = lambda k: generate(params, model, data, inputs, evolution.frames, k)  # noqa: E731
    return jax.vmap(one)(member_keys(key, members)).transpose(1, 0, 2, 3, 4)


def num_parameters(params: Any) -> int:
    """Number of weights in a params pytree."""
    return sum(int(x.size) for x in jax.tree.leaves(params))
