"""Particle Transformer (Qu, Li, Qian, ICML 2022) in flax linen: the ParT of weaver-core's ``ParticleTransformer.py``.

Written for one jet and vmapped; ``init`` / ``apply`` are pure functions on a params pytree with a static
:class:`PartConfig` (linen rather than nnx because a plain pytree of weights plus pure functions is what the rest of
jaxbench passes around — optax states, checkpoints, vmap over seeds — with no module objects to split and merge).

Architecture (the published one, ``networks/example_ParticleTransformer.py`` settings):

- particle embedding: an input normalisation, then for each of ``embed_dims`` (128, 512, 128):
  LayerNorm -> Linear -> GELU; padded particles are zeroed;
- pair embedding (``use_pairs``): the 4 pair features (``features.PAIR_FEATURES``) -> pointwise (1x1-conv)
  layers ``pair_embed_dims`` (64, 64, 64) then ``num_heads``, each Linear -> norm -> GELU (the published
  ``use_pre_activation_pair=False`` keeps the last GELU); the (H, P, P) result is added to the attention logits
  of every particle-attention block; pairs with a padded member give 0 (as the published sparse evaluation);
  the features are symmetric, so only the pairs a <= b are embedded (as published) and mirrored;
- ``num_particle_blocks`` NormFormer blocks: x + LN(c_heads ⊙ MHA(LN(x), bias)), then
  w ⊙ x + fc2(LN(GELU(fc1(LN(x))))) with FFN width ``ffn_ratio`` x d;
- ``num_class_blocks`` class-attention blocks (CaiT): a learned class token queries LN([cls; x]) (the query
  itself is not normalised, as in weaver-core), no dropout; then LayerNorm and Linear to 2 logits (QCD, top).
- weights initialised as published: Xavier-uniform Linear layers (q, k, v separately), zero biases, PyTorch's
  default Conv1d init for the pair layers, class token N(0, 0.02), and out_proj / fc2 of particle block l scaled
  by 1/sqrt(2 l) (``fix_init``).

One deliberate deviation: the published model's BatchNorms (on the particle inputs, the pair inputs and between
the pair layers) keep running batch statistics, which would make ``apply`` stateful and couple jets in a batch
(padding included). Here they are replaced, with the same parameter count, by: a learned per-feature affine on the
particle inputs (already standardised by the published manual constants); a fixed standardisation of the pair
inputs (``PAIR_CENTRE`` / ``PAIR_SCALE``, measured on Pythia jets) followed by a learned affine; LayerNorm over
channels in the hidden pair layers; and a learned per-head affine after the last pair layer (a LayerNorm across
the few heads would erase a bias that all heads share). So ``PUBLISHED`` has 2,141,134 weights, as the published
2.14 M. Masking uses a large finite negative logit (``MASK_LOGIT``): a fully padded jet gives finite logits.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbench.config import check
from jaxbench.errors import ConfigError, DataFormatError

from . import features

#: Logit given to masked keys (finite, so a row with every key masked is uniform rather than NaN).
MASK_LOGIT = -1e9
#: Fixed standardisation of the pair inputs, (x - centre) / scale in ``features.PAIR_FEATURES`` order: mean and
#: standard deviation over all real pairs (a <= b, self-pairs included, as the published BatchNorm sees them) of
#: 2,000 Pythia 8 particle-level anti-kT 0.8 jets (1,000 top, 1,000 QCD; 550-650 GeV; 128 leading constituents).
PAIR_CENTRE = (-1.7, -2.1, -1.5, -0.5)
PAIR_SCALE = (3.0, 1.3, 2.8, 2.9)
VARIANTS = ("physics", "raw")
_LN_EPS = 1e-5  # PyTorch's LayerNorm default


@dataclasses.dataclass(frozen=True)
class PartConfig:
    """Particle Transformer size. embed_dims: particle-embedding MLP widths (the last is the model width d);
    pair_embed_dims: hidden widths of the pair embedding (its output has ``num_heads`` channels); dropout: on
    attention weights, block outputs and FFN activations of the particle blocks (class blocks have none);
    max_particles: leading constituents fed (``inputs``); input_dim: per-particle features (7 physics, 4 raw)."""

    input_dim: int = len(features.PARTICLE_FEATURES)
    embed_dims: tuple[int, ...] = (128, 512, 128)
    pair_embed_dims: tuple[int, ...] = (64, 64, 64)
    num_heads: int = 8
    num_particle_blocks: int = 8
    num_class_blocks: int = 2
    ffn_ratio: int = 4
    dropout: float = 0.1
    max_particles: int = features.PUBLISHED_MAX_PARTICLES
    use_pairs: bool = True

    def __post_init__(self):
        for name in ("input_dim", "num_heads", "num_class_blocks", "ffn_ratio", "max_particles"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 1, f"PartConfig.{name} must be an integer >= 1; got {value!r}.")
        check(
            isinstance(self.num_particle_blocks, int) and self.num_particle_blocks >= 0,
            f"PartConfig.num_particle_blocks must be an integer >= 0; got {self.num_particle_blocks!r}.",
        )
        for name in ("embed_dims", "pair_embed_dims"):
            dims = getattr(self, name)
            check(
                isinstance(dims, tuple) and all(isinstance(d, int) and d >= 1 for d in dims),
                f"PartConfig.{name} must be a tuple of integers >= 1; got {dims!r}.",
            )
        check(len(self.embed_dims) >= 1, "PartConfig.embed_dims needs at least one width (the model width d).")
        check(
            self.embed_dim % self.num_heads == 0,
            f"PartConfig.embed_dims[-1] = {self.embed_dim} must be divisible by num_heads = {self.num_heads}.",
        )
        check(
            isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1,
            f"PartConfig.dropout must be in [0, 1); got {self.dropout!r}.",
        )
        check(isinstance(self.use_pairs, bool), f"PartConfig.use_pairs must be True or False; got {self.use_pairs!r}.")

    @property
    def embed_dim(self) -> int:
        return self.embed_dims[-1]


#: For tests and CI: 2 + 1 blocks, d = 32, 4 heads, 32 particles; 31,646 weights; init + forward on 8 jets ~2 s.
TINY = PartConfig(
    embed_dims=(32, 64, 32),
    pair_embed_dims=(16, 16),
    num_heads=4,
    num_particle_blocks=2,
    num_class_blocks=1,
    ffn_ratio=2,
    dropout=0.0,
    max_particles=32,
)
#: For a CPU quick run: 155,010 weights, 64 particles; on 2 cores a batch-64 train step (adam) takes ~0.26 s, so 200
#: steps with their compile take about a minute.
QUICK = PartConfig(
    embed_dims=(64, 128, 64),
    pair_embed_dims=(32, 32),
    num_heads=4,
    num_particle_blocks=3,
    num_class_blocks=1,
    ffn_ratio=2,
    dropout=0.0,
    max_particles=64,
)
#: The published ParT (8 + 2 blocks, d = 128, 8 heads, pair embed 64, 128 particles): 2,141,134 weights (for GPUs:
#: a batch-64 train step takes ~17 s on 2 CPU cores, after an ~80 s compile).
PUBLISHED = PartConfig()
CONFIGS = {"tiny": TINY, "quick": QUICK, "published": PUBLISHED}


def variant_config(config: PartConfig, variant: str) -> PartConfig:
    """``config`` adapted to an input variant: "physics" (7 features, pairs as configured) or "raw" (4, no pairs)."""
    _check_variant(variant)
    if variant == "raw":
        return dataclasses.replace(config, input_dim=4, use_pairs=False)
    return dataclasses.replace(config, input_dim=len(features.PARTICLE_FEATURES))


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"input variant {variant!r} is unknown; use one of {VARIANTS}.")


# -- network (one jet) --------------------------------------------------------------------------
_xavier = nn.initializers.xavier_uniform()
_LayerNorm = partial(nn.LayerNorm, epsilon=_LN_EPS)
_gelu = partial(nn.gelu, approximate=False)  # PyTorch's nn.GELU is the exact erf form


def _torch_bias_init(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class _Affine(nn.Module):
    """A learned per-channel scale and shift (an eval-mode BatchNorm with unit statistics)."""

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return x * scale[None, :] + bias[None, :]  # x (M, C)


class _ParticleEmbed(nn.Module):
    dims: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        x = _Affine(name="input_norm")(x)
        for i, dim in enumerate(self.dims):
            x = _LayerNorm(name=f"norm_{i}")(x)
            x = _gelu(nn.Dense(dim, kernel_init=_xavier, name=f"linear_{i}")(x))
        return x


class _PairEmbed(nn.Module):
    dims: tuple[int, ...]  # hidden widths, then the number of heads

    @nn.compact
    def __call__(self, u):
        u = (u - jnp.asarray(PAIR_CENTRE, u.dtype)[None, :]) / jnp.asarray(PAIR_SCALE, u.dtype)[None, :]
        u = _Affine(name="input_norm")(u)
        for i, dim in enumerate(self.dims):
            fan_in = u.shape[-1]
            conv_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")  # PyTorch Conv1d default
            u = nn.Dense(dim, kernel_init=conv_init, bias_init=_torch_bias_init(fan_in), name=f"conv_{i}")(u)
            last = i == len(self.dims) - 1
            u = (_Affine(name=f"norm_{i}") if last else _LayerNorm(name=f"norm_{i}"))(u)
            u = _gelu(u)
        return u


class _Attention(nn.Module):
    """Multi-head attention of queries (Q, d) on keys (K, d) with masked keys and an optional (H, Q, K) bias."""

    num_heads: int
    dropout: float
    out_scale: float  # fix_init: the output projection's init is divided by this

    @nn.compact
    def __call__(self, query, keys, key_mask, bias, deterministic):
        d = query.shape[-1]
        head_dim = d // self.num_heads

        def project(name, x):
            return nn.Dense(d, kernel_init=_xavier, name=name)(x).reshape(x.shape[0], self.num_heads, head_dim)

        q, k, v = project("query", query), project("key", keys), project("value", keys)
        logits = jnp.einsum("qhc,khc->hqk", q, k) / math.sqrt(head_dim)
        if bias is not None:
            logits = logits + bias
        logits = jnp.where(key_mask[None, None, :], logits, MASK_LOGIT)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = nn.Dropout(self.dropout)(weights, deterministic=deterministic)
        out = jnp.einsum("hqk,khc->qhc", weights, v).reshape(query.shape[0], d)
        out_init = nn.initializers.variance_scaling(1.0 / self.out_scale**2, "fan_avg", "uniform")
        return nn.Dense(d, kernel_init=out_init, name="out_proj")(out)


class _Block(nn.Module):
    """A NormFormer particle-attention block, or (with ``x_cls``) a class-attention block."""

    num_heads: int
    ffn_ratio: int
    dropout: float
    layer_id: int  # 1.. for particle blocks (fix_init scales by 1/sqrt(2 layer_id)); 0 = no rescale

    @nn.compact
    def __call__(self, x, mask, bias, deterministic, x_cls=None):
        d = x.shape[-1]
        scale = math.sqrt(2.0 * self.layer_id) if self.layer_id else 1.0
        attention = _Attention(self.num_heads, self.dropout, scale, name="attn")
        pre_attn_norm = _LayerNorm(name="pre_attn_norm")
        if x_cls is None:
            residual = x
            h = pre_attn_norm(x)
            h = attention(h, h, mask, bias, deterministic)
        else:
            residual = x_cls
            u = pre_attn_norm(jnp.concatenate([x_cls, x], axis=0))
            key_mask = jnp.concatenate([jnp.ones((x_cls.shape[0],), bool), mask])
            h = attention(x_cls, u, key_mask, None, deterministic)
        head_scale = self.param("head_scale", nn.initializers.ones, (self.num_heads,))
        h = (h.reshape(h.shape[0], self.num_heads, d // self.num_heads) * head_scale[None, :, None]).reshape(h.shape)
        h = _LayerNorm(name="post_attn_norm")(h)
        x = nn.Dropout(self.dropout)(h, deterministic=deterministic) + residual

        residual = x
        h = _LayerNorm(name="pre_fc_norm")(x)
        h = _gelu(nn.Dense(self.ffn_ratio * d, kernel_init=_xavier, name="fc1")(h))
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        h = _LayerNorm(name="post_fc_norm")(h)
        fc2_init = nn.initializers.variance_scaling(1.0 / scale**2, "fan_avg", "uniform")
        h = nn.Dense(d, kernel_init=fc2_init, name="fc2")(h)
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        residual_scale = self.param("residual_scale", nn.initializers.ones, (d,))
        return h + residual_scale[None, :] * residual


class _ParticleTransformer(nn.Module):
    """Logits (2,) of one jet. Shapes: x (P, F), mask (P,) bool, pairs (P, P, 4) or None."""

    config: PartConfig

    @nn.compact
    def __call__(self, x, mask, pairs, deterministic):
        config = self.config
        h = _ParticleEmbed(config.embed_dims, name="embed")(x)
        h = jnp.where(mask[:, None], h, 0.0)
        bias = None
        if pairs is not None:
            # The four pair features are symmetric in (a, b): embed the P(P+1)/2 pairs a <= b once, as published.
            rows, cols = np.triu_indices(x.shape[0])
            embedded = _PairEmbed((*config.pair_embed_dims, config.num_heads), name="pair_embed")(pairs[rows, cols])
            embedded = jnp.where((mask[rows] & mask[cols])[:, None], embedded, 0.0)
            bias = jnp.zeros((config.num_heads, x.shape[0], x.shape[0]), embedded.dtype)
            bias = bias.at[:, rows, cols].set(embedded.T).at[:, cols, rows].set(embedded.T)  # (H, P, P)
        for i in range(config.num_particle_blocks):
            block = _Block(config.num_heads, config.ffn_ratio, config.dropout, i + 1, name=f"block_{i}")
            h = block(h, mask, bias, deterministic)
        cls = self.param("cls_token", nn.initializers.truncated_normal(0.02), (1, config.embed_dim))
        for i in range(config.num_class_blocks):
            cls = _Block(config.num_heads, config.ffn_ratio, 0.0, 0, name=f"class_block_{i}")(
                h, mask, None, deterministic, x_cls=cls
            )
        out = _LayerNorm(name="norm")(cls[0])
        return nn.Dense(2, kernel_init=_xavier, name="head")(out)


# -- functional API -----------------------------------------------------------------------------
@partial(jax.jit, static_argnames="config")
def init(key: jax.Array, config: PartConfig) -> dict:
    """Fresh weights (a nested dict of arrays) for ``config``; they do not depend on the number of particles."""
    num = 2
    x = jnp.zeros((num, config.input_dim), jnp.float32)
    mask = jnp.ones((num,), bool)
    pairs = jnp.zeros((num, num, len(features.PAIR_FEATURES)), jnp.float32) if config.use_pairs else None
    return _ParticleTransformer(config).init(key, x, mask, pairs, True)["params"]


def _check_inputs(config: PartConfig, x, mask, pairs) -> None:
    if x.ndim != 3 or x.shape[-1] != config.input_dim:
        raise DataFormatError(
            f"particle inputs have shape {tuple(x.shape)}; PartConfig.input_dim = {config.input_dim} needs "
            f"(N, P, {config.input_dim}) — use part.inputs(p4, config, variant) and variant_config(config, variant)."
        )
    if mask.shape != x.shape[:2]:
        raise DataFormatError(f"mask has shape {tuple(mask.shape)}; expected (N, P) = {tuple(x.shape[:2])}.")
    if config.use_pairs and pairs is None:
        raise ConfigError(
            "PartConfig.use_pairs is True but no pair features were passed; pass pairs= or use_pairs=False."
        )
    if not config.use_pairs and pairs is not None:
        raise ConfigError("pair features were passed but PartConfig.use_pairs is False; drop pairs= or set use_pairs.")
    if pairs is not None and pairs.shape != (*x.shape[:2], x.shape[1], len(features.PAIR_FEATURES)):
        raise DataFormatError(
            f"pairs have shape {tuple(pairs.shape)}; expected (N, P, P, 4) = {(*x.shape[:2], x.shape[1], 4)}."
        )


@partial(jax.jit, static_argnames="config")
def apply(
    params: dict,
    config: PartConfig,
    x: jax.Array,
    mask: jax.Array,
    pairs: jax.Array | None = None,
    *,
    key: jax.Array | None = None,
) -> jax.Array:
    """Logits (N, 2) (column 1 = top). Shapes: x (N, P, input_dim), mask (N, P) bool, pairs (N, P, P, 4) or None.

    Dropout is active only when ``key`` is given (training); each jet's dropout key is ``fold_in(key, jet index)``.
    """
    _check_inputs(config, x, mask, pairs)
    model = _ParticleTransformer(config)
    deterministic = key is None or config.dropout == 0
    mask = jnp.asarray(mask, bool)

    def one(x_jet, mask_jet, pairs_jet, index):
        rngs = None if deterministic else {"dropout": jax.random.fold_in(key, index)}
        return model.apply({"params": params}, x_jet, mask_jet, pairs_jet, deterministic, rngs=rngs)

    index = jnp.arange(x.shape[0])
    return jax.vmap(one, in_axes=(0, 0, None if pairs is None else 0, 0))(x, mask, pairs, index)


def num_parameters(params: Any) -> int:
    """The number of weights in ``params`` (arrays or ``jax.eval_shape`` structs)."""
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


def inputs(
    p4: jax.Array, config: PartConfig, variant: str = "physics"
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """(x, mask, pairs) for ``apply`` from ``Jets.p4`` (N, P, 4): the leading ``config.max_particles`` constituents.

    "physics": the 7 standardised particle features and, if ``config.use_pairs``, the 4 pair features; "raw":
    (E, px, py, pz) / ``features.RAW_SCALE_GEV`` and no pairs (no physics prior). Fewer than ``max_particles``
    slots are zero-padded, so the shapes are always (N, M, F) with M = ``config.max_particles``.
    """
    _check_variant(variant)
    features.check_p4(p4)
    expected = 4 if variant == "raw" else len(features.PARTICLE_FEATURES)
    if config.input_dim != expected:
        raise ConfigError(
            f"variant {variant!r} gives {expected} features per particle, PartConfig.input_dim = {config.input_dim}; "
            f"use variant_config(config, {variant!r})."
        )
    if variant == "raw" and config.use_pairs:
        raise ConfigError("variant 'raw' has no pair features; use variant_config(config, 'raw') (use_pairs=False).")
    p4 = jnp.asarray(p4, jnp.float32)
    short = config.max_particles - p4.shape[1]
    if short > 0:
        p4 = jnp.pad(p4, ((0, 0), (0, short), (0, 0)))
    if variant == "raw":
        x, mask = features.raw_features(p4, config.max_particles)
        return x, mask, None
    x, mask = features.particle_features(p4, config.max_particles)
    pairs = features.pair_features(p4[:, : config.max_particles]) if config.use_pairs else None
    return x, mask, pairs
