"""Sharding at the edge: the same batched function on one device or on every device of a mesh.

Task code never mentions devices. The runner lays the leading (batch) axis of a sweep over a 1-D
``Mesh`` named ``"batch"`` and replicates shared inputs (event pools, model parameters). Items are
keyed by their global index (``jax.random.fold_in``), so results do not depend on the device count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def batch_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (BATCH_AXIS,))


def shard_batched(fn: Callable[[Any, Any], Any], mesh: Mesh) -> Callable[[Any, Any], Any]:
    """``jit(fn)`` with ``shared`` replicated and the leading axis of ``batch`` (and outputs) split.

    ``fn(shared, batch) -> outputs``; the caller pads the batch to a multiple of ``mesh.size``.
    """
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    return jax.jit(fn, in_shardings=(replicated, split), out_shardings=split)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places ``tree`` on every device of ``mesh`` once, so repeated calls do not copy it again."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def pad_to_multiple(batch: Any, multiple: int) -> tuple[Any, int]:
    """Pads every leaf's leading axis to a multiple of ``multiple`` by repeating the last item.

    Returns the padded pytree and the original length; padded rows are dropped by the caller.
    """
    leaves = jax.tree.leaves(batch)
    n = int(leaves[0].shape[0])
    padded_n = -(-n // multiple) * multiple
    if padded_n == n:
        return batch, n

    def pad(x):
        x = jnp.asarray(x)
        fill = jnp.repeat(x[-1:], padded_n - n, axis=0)
        return jnp.concatenate([x, fill], axis=0)

    return jax.tree.map(pad, batch), n
