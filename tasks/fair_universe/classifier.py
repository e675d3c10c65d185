"""Signal-vs-background classifier on the 28 features (16 PRI + 12 DER), flax + optax.

``params`` is one pytree: the network weights and the feature standardisation. Training uses
class-balanced weights (signal and background each sum to 1), a weighted binary cross-entropy and
Adam, with one ``lax.scan`` per epoch so the whole loop compiles once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

VALID_FRACTION = 0.1  # of the training events, held out for the validation loss


class ScoreNet(nn.Module):
    """An MLP from standardised features (n, 28) to a signal logit (n,)."""

    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = nn.silu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


class TrainHistory(NamedTuple):
    """Per-epoch mean training loss and the loss on a held-out split (class-balanced BCE)."""

    train_loss: jax.Array
    valid_loss: jax.Array


def balanced_weights(weights: jax.Array, labels: jax.Array) -> jax.Array:
    """Event weights rescaled so that signal and background each sum to 1."""
    signal = labels == 1
    sum_signal = jnp.sum(jnp.where(signal, weights, 0.0))
    sum_background = jnp.sum(jnp.where(signal, 0.0, weights))
    return jnp.where(signal, weights / sum_signal, weights / sum_background)


def init_params(key: jax.Array, features: jax.Array, hidden: Sequence[int]) -> dict:
    """Network weights plus the standardisation (mean, std) measured on ``features`` (n, 28)."""
    mean = jnp.mean(features, axis=0)
    std = jnp.std(features, axis=0) + 1e-6
    net = ScoreNet(tuple(hidden)).init(key, features[:2])
    return {"net": net, "mean": mean, "std": std}


def drop_inputs(params: dict, columns: Sequence[int]) -> dict:
    """The classifier with the input ``columns`` cut off: their first-layer kernel rows are zero and their
    standardisation is (0, 1), so its score does not depend on those (finite) inputs at all."""
    if not len(columns):
        return params
    cols = jnp.asarray(list(columns))
    layers = params["net"]["params"]
    first = min(layers, key=lambda name: int(name.rsplit("_", 1)[1]))
    kernel = jnp.asarray(layers[first]["kernel"]).at[cols].set(0.0)
    net = {**params["net"], "params": {**layers, first: {**layers[first], "kernel": kernel}}}
    return {
        **params,
        "net": net,
        "mean": jnp.asarray(params["mean"]).at[cols].set(0.0),
        "std": jnp.asarray(params["std"]).at[cols].set(1.0),
    }


def make_logit_fn(hidden: Sequence[int]) -> Callable[[dict, jax.Array], jax.Array]:
    """``logit(params, features (n, 28)) -> (n,)``."""
    net = ScoreNet(tuple(hidden))

    def logit(params: dict, features: jax.Array) -> jax.Array:
        return net.apply(params["net"], (features - params["mean"][None, :]) / params["std"][None, :])

    return logit


def classifier_score(params: dict, features: jax.Array | tuple[jax.Array, ...]) -> jax.Array:
    """The classifier's output (n,) in [0, 1], 1 = signal-like.

    ``features`` is the (n, 28) array, or a tuple of column blocks whose concatenation it is (e.g.
    the 16 PRI and 12 DER columns): the first dense layer then multiplies each block by its rows
    of the kernel, and the (n, 28) array is never built. The standardisation is folded into that
    layer (``folded_layers``); the result equals ``sigmoid(logit(params, features))`` within float32
    rounding.
    """
    return folded_score(folded_layers(params), features)


def folded_layers(params: dict) -> tuple[tuple[jax.Array, jax.Array], ...]:
    """The network's (kernel, bias) per dense layer, the feature standardisation folded into the first.

    (x - mean) / std @ W + b = x @ (W / std) + (b - (mean / std) @ W): one pass less over the
    (n, 28) features when scoring a whole pool per pseudo-experiment.
    """
    layers = params["net"]["params"]
    dense = [layers[name] for name in sorted(layers, key=lambda name: int(name.rsplit("_", 1)[1]))]
    inv_std = 1.0 / params["std"]
    first = (dense[0]["kernel"] * inv_std[:, None], dense[0]["bias"] - (params["mean"] * inv_std) @ dense[0]["kernel"])
    return (first,) + tuple((d["kernel"], d["bias"]) for d in dense[1:])


def folded_score(
    layers: tuple[tuple[jax.Array, jax.Array], ...], features: jax.Array | tuple[jax.Array, ...]
) -> jax.Array:
    """Score (n,) in [0, 1] from ``folded_layers`` and raw features: an (n, 28) array or a tuple of
    column blocks of it, in order."""
    blocks = features if isinstance(features, tuple) else (features,)
    kernel, bias = layers[0]
    x, row = bias[None, :], 0
    for block in blocks:  # x @ kernel, block by block of feature columns
        x = x + block @ kernel[row : row + block.shape[-1]]
        row += block.shape[-1]
    if row != kernel.shape[0]:
        raise ValueError(f"the feature blocks have {row} columns in all; the network takes {kernel.shape[0]}.")
    x = nn.silu(x)
    for kernel, bias in layers[1:-1]:
        x = nn.silu(x @ kernel + bias[None, :])
    kernel, bias = layers[-1]
    return jax.nn.sigmoid((x @ kernel + bias[None, :])[:, 0])


def train_classifier(
    key: jax.Array,
    features: jax.Array,
    labels: jax.Array,
    weights: jax.Array,
    *,
    hidden: Sequence[int] = (64, 64),
    epochs: int = 10,
    batch_size: int = 1024,
    learning_rate: float = 2e-3,
    valid_fraction: float = VALID_FRACTION,
    drop_columns: Sequence[int] = (),
) -> tuple[dict, TrainHistory]:
    """Trains the classifier; returns its params and the per-epoch history.

    Shapes: features (n, 28), labels (n,) 0/1, weights (n,) physics weights (any normalisation).
    ``drop_columns``: inputs the classifier must not see (zeroed for training, cut off by ``drop_inputs``).
    """
    init_key, split_key, shuffle_key = jax.random.split(key, 3)
    n = features.shape[0]
    order = jax.random.permutation(split_key, n)
    n_valid = int(n * valid_fraction)
    valid, train = order[:n_valid], order[n_valid:]
    n_batches = max(1, (n - n_valid) // batch_size)
    train = train[: n_batches * batch_size]
    w = balanced_weights(weights, labels) * n  # mean weight ~ 1 keeps the loss O(1)

    if drop_columns:
        features = features.at[:, jnp.asarray(list(drop_columns))].set(0.0)
    params = drop_inputs(init_params(init_key, features[train], hidden), drop_columns)
    logit = make_logit_fn(hidden)
    schedule = optax.cosine_decay_schedule(learning_rate, epochs * n_batches, alpha=0.05)
    optimizer = optax.adam(schedule)

    def loss_fn(net_params, rows):
        p = {**params, "net": net_params}
        per_event = optax.sigmoid_binary_cross_entropy(logit(p, features[rows]), labels[rows].astype(jnp.float32))
        return jnp.sum(w[rows] * per_event) / jnp.sum(w[rows])

    @jax.jit
    def epoch(carry, epoch_index):
        net_params, opt_state = carry
        rows = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch_index), train)
        rows = rows.reshape(n_batches, batch_size)

        def step(carry, batch_rows):
            net_params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(net_params, batch_rows)
            updates, opt_state = optimizer.update(grads, opt_state, net_params)
            return (optax.apply_updates(net_params, updates), opt_state), loss

        (net_params, opt_state), losses = jax.lax.scan(step, (net_params, opt_state), rows)
        return (net_params, opt_state), (jnp.mean(losses), loss_fn(net_params, valid))

    carry = (params["net"], optimizer.init(params["net"]))
    carry, (train_loss, valid_loss) = jax.lax.scan(epoch, carry, jnp.arange(epochs))
    return drop_inputs({**params, "net": carry[0]}, drop_columns), TrainHistory(train_loss, valid_loss)
