"""Fixed-shape molecular graphs: all ordered atom pairs of one frame, masked by the cutoff.

The edge budget is static: a molecule of N atoms (padding included) always has the N(N-1) ordered
pairs ``i != j`` as edges, and a boolean mask says which are real (both atoms real and closer than
the cutoff). For the small molecules of this task (9-21 atoms, 72-420 pairs) this costs little
over a neighbour list and never overflows, so one compiled program serves every frame, batch and
geometry. Graphs are built *inside* the jitted function from the positions, so forces
``-dE/dpositions`` flow through the edge vectors.

Padding convention: atomic number 0 is a padding atom. Its edges are masked, it gets no energy,
and any number of padding atoms may sit on the same point (:func:`pad_atoms` puts them at the
origin). Masked edge vectors are replaced by a fixed unit vector *before* any norm, so neither
values nor gradients (forces, training gradients) can become NaN.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxbench.errors import DataFormatError

#: Atomic number that marks a padding atom.
PADDING_SPECIES = 0


class EdgeGeometry(NamedTuple):
    """Edge vectors safe to differentiate. Shapes: vectors (E, 3) Å, lengths (E,) Å, mask (E,) bool.

    ``vectors[e] = positions[senders[e]] - positions[receivers[e]]`` for real edges and the unit
    vector (1, 0, 0) for masked ones (so ``lengths`` is 1 Å there, never 0).
    """

    vectors: jax.Array
    lengths: jax.Array
    mask: jax.Array


@lru_cache(maxsize=64)
def _all_pairs(num_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.nonzero(~np.eye(num_atoms, dtype=bool))
    senders, receivers = j.astype(np.int32), i.astype(np.int32)
    senders.setflags(write=False)
    receivers.setflags(write=False)
    return senders, receivers


def all_pairs(num_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """(senders, receivers) of the N(N-1) ordered pairs ``i != j``, int32, grouped by receiver.

    Host (numpy) constants, so inside ``jit`` the gathers use static indices.
    """
    if num_atoms < 1:
        raise DataFormatError(f"a molecule needs at least one atom, got num_atoms={num_atoms}.")
    return _all_pairs(int(num_atoms))


def molecule_graph(species: jax.Array, positions: jax.Array, cutoff: float) -> jraph.GraphsTuple:
    """One frame as a ``jraph.GraphsTuple`` with the static all-pairs edge budget.

    Shapes: species (N,) int atomic numbers (0 = padding), positions (N, 3) Å. ``nodes`` holds
    ``species``, ``positions`` and ``mask`` (real atom); ``edges`` holds ``mask`` (real pair with
    distance < ``cutoff`` Å). ``n_node = [N]``, ``n_edge = [N(N-1)]``.
    """
    num_atoms = species.shape[0]
    if positions.shape != (num_atoms, 3):
        raise DataFormatError(
            f"positions of one frame must have shape (num_atoms, 3) = ({num_atoms}, 3), got {positions.shape}."
        )
    senders, receivers = all_pairs(num_atoms)
    atom_mask = species != PADDING_SPECIES
    # The squared distance needs no square root, so the mask never produces a NaN gradient.
    difference = positions[senders] - positions[receivers]
    squared = jnp.sum(difference * difference, axis=-1)
    edge_mask = atom_mask[senders] & atom_mask[receivers] & (squared < cutoff * cutoff)
    return jraph.GraphsTuple(
        nodes={"species": species, "positions": positions, "mask": atom_mask},
        edges={"mask": edge_mask},
        senders=jnp.asarray(senders),
        receivers=jnp.asarray(receivers),
        globals=None,
        n_node=jnp.array([num_atoms], dtype=jnp.int32),
        n_edge=jnp.array([senders.shape[0]], dtype=jnp.int32),
    )


def edge_geometry(graph: jraph.GraphsTuple) -> EdgeGeometry:
    """Edge vectors (sender minus receiver, Å) and lengths, with masked edges set to (1, 0, 0).

    The replacement happens before the norm (the double-``where`` pattern): a masked edge between
    two coincident padding atoms has a zero difference vector, whose norm has an infinite
    gradient; selecting the dummy vector first keeps every gradient finite.
    """
    positions = graph.nodes["positions"]
    mask = graph.edges["mask"]
    difference = positions[graph.senders] - positions[graph.receivers]
    dummy = jnp.zeros_like(difference).at[:, 0].set(1.0)
    vectors = jnp.where(mask[:, None], difference, dummy)
    lengths = jnp.sqrt(jnp.sum(vectors * vectors, axis=-1))
    return EdgeGeometry(vectors, lengths, mask)


def pad_atoms(species: np.ndarray, positions: np.ndarray, num_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Pads a molecule to ``num_atoms`` atoms with padding atoms (species 0) at the origin.

    Shapes: species (N,), positions (..., N, 3) Å -> (num_atoms,), (..., num_atoms, 3). Host
    function (numpy), for batching molecules of different sizes into one compiled program.
    """
    species = np.asarray(species)
    positions = np.asarray(positions)
    extra = num_atoms - species.shape[0]
    if extra < 0:
        raise DataFormatError(f"cannot pad {species.shape[0]} atoms down to num_atoms={num_atoms}.")
    padded_species = np.concatenate([species, np.zeros(extra, dtype=species.dtype)])
    pad_width = [(0, 0)] * (positions.ndim - 2) + [(0, extra), (0, 0)]
    return padded_species, np.pad(positions, pad_width)


def neighbour_counts(species: np.ndarray, positions: np.ndarray, cutoff: float) -> np.ndarray:
    """Number of real neighbours within ``cutoff`` Å of every real atom, per frame (host, float64).

    Shapes: species (N,), positions (F, N, 3) or (N, 3) -> (F, n_real_atoms) or (n_real_atoms,).
    """
    species = np.asarray(species)
    positions = np.asarray(positions, dtype=np.float64)
    single = positions.ndim == 2
    positions = positions[None] if single else positions
    real = species != PADDING_SPECIES
    x = positions[:, real]
    squared = np.sum((x[:, :, None, :] - x[:, None, :, :]) ** 2, axis=-1)
    n = x.shape[1]
    within = (squared < cutoff * cutoff) & ~np.eye(n, dtype=bool)[None]
    counts = np.sum(within, axis=-1)
    return counts[0] if single else counts


def average_num_neighbours(species: np.ndarray, positions: np.ndarray, cutoff: float) -> float:
    """Mean number of neighbours within ``cutoff`` Å per real atom over all frames (at least 1)."""
    counts = neighbour_counts(species, positions, cutoff)
    return float(max(np.mean(counts), 1.0)) if counts.size else 1.0
