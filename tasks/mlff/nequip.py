"""NequIP (Batzner et al., Nat. Commun. 13, 2453, 2022): an E(3)-equivariant interatomic potential.

Written with e3nn-jax (irreps, spherical harmonics, tensor products, gates) and flax linen, on the
fixed-shape graphs of :mod:`jaxbench.tasks.mlff.graph`. Units: positions Å, energies eV, forces
eV/Å.

Architecture (one frame; ``vmap`` lifts it to a batch):

- embedding: one-hot species -> linear -> ``C x 0e`` node features;
- ``layers`` interaction blocks, each: a species-dependent linear self-connection; linear;
  convolution ``sum_j R(|r_ij|) (h_j (x) Y(r_ij))`` over the neighbours within the cutoff,
  divided by sqrt(average number of neighbours) as in NequIP; linear; gate nonlinearity
  (SiLU on scalars, sigmoid gates on l > 0); residual connection when the irreps match.
  ``R`` is an MLP (SiLU, no biases) of 8 Bessel functions times the polynomial envelope
  ``u_p`` (p = 6) and gives one weight per tensor-product path and channel ("uvu");
- hidden irreps are ``C x l`` with the natural parity ``(-1)^l`` for ``l <= l_max``; the last
  block outputs only the scalars (its other outputs could not reach the energy anyway);
- readout: linear -> per-atom energy ``e_i``, then ``E_i = scale[s_i] e_i + shift[s_i]`` with a
  fixed per-species scale and shift fitted to the training set (:func:`fit_shift_scale`);
  ``E = sum_i E_i``, ``F = -dE/dpositions``.

``params`` is a :class:`NequipParams` pytree (the config rides along as static metadata), so
``init`` / ``energy_and_forces`` are plain functions that jit, vmap and grad.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxbench.errors import ConfigError, DataFormatError

from .graph import PADDING_SPECIES, EdgeGeometry, average_num_neighbours, edge_geometry, molecule_graph
from .settings import MAX_ATOMIC_NUMBER, NequipConfig

#: For tests and CI: about 4k weights.
TINY = NequipConfig(l_max=1, channels=8, layers=2, cutoff=4.0, radial_hidden=16)
#: A mid-size model for CPU benchmarks (the "small NequIP" of docs/STACK: 4 layers, 32 ch, l <= 2).
MEDIUM = NequipConfig(l_max=2, channels=32, layers=4, cutoff=4.0, radial_hidden=64)
#: The paper's setting for small molecules (r_c 4 Å, l_max 3, 64 channels, 5 layers); for GPUs.
PAPER = NequipConfig(l_max=3, channels=64, layers=5, cutoff=4.0, radial_hidden=64)

CONFIGS = {"tiny": TINY, "medium": MEDIUM, "paper": PAPER}


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["weights", "species_shift", "species_scale", "avg_num_neighbours"],
    meta_fields=["config"],
)
@dataclasses.dataclass(frozen=True)
class NequipParams:
    """Model parameters. ``weights`` are trained; the other arrays are fitted once and fixed.

    Attributes:
      config: the :class:`NequipConfig` (static pytree metadata, not a leaf).
      weights: flax variables of the network.
      species_shift: (S,) eV, per-atom energy shift per species (``config.species`` order).
      species_scale: (S,) eV, per-atom energy scale per species.
      avg_num_neighbours: () average neighbour count used to normalise the convolution.
    """

    config: NequipConfig
    weights: dict
    species_shift: jax.Array
    species_scale: jax.Array
    avg_num_neighbours: jax.Array

    def replace(self, **changes) -> NequipParams:
        return dataclasses.replace(self, **changes)


# -- network ------------------------------------------------------------------------------------
def bessel_basis(r: jax.Array, number: int, cutoff: float) -> jax.Array:
    """Bessel radial basis sqrt(2/c) sin(n pi r / c) / r, n = 1..number (Klicpera et al. 2020, eq. 7).

    Shapes: r (E,) Å, > 0 -> (E, number), in Å^-3/2. (e3nn.bessel does the same with implicit
    rank promotion, which this project's strict setting forbids.)
    """
    n = jnp.arange(1, number + 1, dtype=r.dtype)[None, :]
    return math.sqrt(2.0 / cutoff) * jnp.sin(n * (math.pi / cutoff) * r[:, None]) / r[:, None]


class _Interaction(nn.Module):
    """One NequIP interaction block on a single frame."""

    config: NequipConfig
    irreps_out: str  # a string: flax would turn an Irreps (a tuple) into a plain tuple

    @nn.compact
    def __call__(self, h, species_index, sh, radial, senders, receivers, avg_num_neighbours):
        num_atoms = h.shape[0]
        irreps_out = e3nn.Irreps(self.irreps_out)
        scalars = irreps_out.filter(keep=["0e", "0o"])
        gated = irreps_out.filter(drop=["0e", "0o"])
        gate_in = (scalars + e3nn.Irreps(f"{gated.num_irreps}x0e") + gated).simplify()

        self_connection = e3nn.flax.Linear(
            gate_in, num_indexed_weights=self.config.num_species, force_irreps_out=True, name="self_connection"
        )(species_index, h)
        x = e3nn.flax.Linear(h.irreps, name="linear_in")(h)
        messages = e3nn.tensor_product(x[senders], sh, filter_ir_out=irreps_out)
        path_weights = e3nn.flax.MultiLayerPerceptron(
            (self.config.radial_hidden,) * self.config.radial_layers + (messages.irreps.num_irreps,),
            act=jax.nn.silu,
            output_activation=False,
            name="radial_mlp",
        )(radial)
        messages = messages * path_weights
        summed = e3nn.scatter_sum(messages, dst=receivers, output_size=num_atoms)
        summed = summed / jnp.sqrt(avg_num_neighbours)
        x = e3nn.flax.Linear(gate_in, force_irreps_out=True, name="linear_out")(summed)
        x = e3nn.gate(x + self_connection, even_act=jax.nn.silu, odd_act=jnp.tanh, even_gate_act=jax.nn.sigmoid)
        residual = h.filter(keep=x.irreps)
        if residual.irreps == x.irreps:
            x = x + residual
        return x


class _NequIP(nn.Module):
    """Per-atom energies ``e_i`` (before scale and shift) of one frame. Shapes: (N,)."""

    config: NequipConfig

    @nn.compact
    def __call__(self, species_index, geometry: EdgeGeometry, senders, receivers, avg_num_neighbours):
        config = self.config
        one_hot = jax.nn.one_hot(species_index, config.num_species)
        h = e3nn.flax.Linear(f"{config.channels}x0e", name="embedding")(
            e3nn.IrrepsArray(f"{config.num_species}x0e", one_hot)
        )
        sh = e3nn.spherical_harmonics(
            e3nn.Irreps.spherical_harmonics(config.l_max),
            e3nn.IrrepsArray("1o", geometry.vectors),
            normalize=True,
            normalization="component",
        )
        envelope = e3nn.poly_envelope(config.envelope_p - 1, 2, config.cutoff)(geometry.lengths)
        envelope = jnp.where(geometry.mask, envelope, 0.0)
        radial = bessel_basis(geometry.lengths, config.radial_basis, config.cutoff) * envelope[:, None]
        for layer in range(config.layers):
            last = layer == config.layers - 1
            irreps_out = f"{config.channels}x0e" if last else str(config.hidden_irreps)
            h = _Interaction(config, irreps_out, name=f"interaction_{layer}")(
                h, species_index, sh, radial, senders, receivers, avg_num_neighbours
            )
        return e3nn.flax.Linear("1x0e", name="readout")(h).array[:, 0]


# -- functional API -----------------------------------------------------------------------------
def _species_table(config: NequipConfig) -> np.ndarray:
    table = np.zeros(MAX_ATOMIC_NUMBER + 1, dtype=np.int32)
    table[list(config.species)] = np.arange(config.num_species, dtype=np.int32)
    return table


def check_species(config: NequipConfig, species: ArrayLike) -> None:
    """Raises ConfigError if ``species`` (concrete) holds an atomic number the config lacks.

    Traced species cannot be checked and pass silently (unknown ones would act as species 0).
    """
    try:
        values = np.unique(np.asarray(species))
    except jax.errors.TracerArrayConversionError:
        return
    unknown = sorted(set(values.tolist()) - set(config.species) - {PADDING_SPECIES})
    if unknown:
        raise ConfigError(
            f"atomic numbers {unknown} are not in NequipConfig.species {config.species}; "
            f"make the config with species={tuple(sorted(set(config.species) | set(unknown)))}."
        )


def _frame_atomic_energies(params: NequipParams, species: jax.Array, positions: jax.Array, shifted: bool) -> jax.Array:
    config = params.config
    graph = molecule_graph(species, positions, config.cutoff)
    geometry = edge_geometry(graph)
    species_index = jnp.asarray(_species_table(config))[species]
    e = _NequIP(config).apply(
        params.weights, species_index, geometry, graph.senders, graph.receivers, params.avg_num_neighbours
    )
    e = e * params.species_scale[species_index]
    if shifted:
        e = e + params.species_shift[species_index]
    return jnp.where(graph.nodes["mask"], e, 0.0)


@partial(jax.jit, static_argnames="config")
def _init_weights(key, species, positions, avg_num_neighbours, config: NequipConfig):
    # One compiled program instead of hundreds of op-by-op dispatches (seconds on a CPU).
    graph = molecule_graph(species, positions, config.cutoff)
    species_index = jnp.asarray(_species_table(config))[species]
    return _NequIP(config).init(
        key, species_index, edge_geometry(graph), graph.senders, graph.receivers, avg_num_neighbours
    )


def init(key: jax.Array, config: NequipConfig, species: ArrayLike, positions: ArrayLike) -> NequipParams:
    """Initial parameters: random weights, shift 0 eV, scale 1 eV (see :func:`fit_shift_scale`).

    Shapes: species (N,) atomic numbers, positions (N, 3) or (F, N, 3) Å. The average number of
    neighbours is measured on all given frames (host, numpy). ``vmap`` over ``key`` works when
    ``species``/``positions`` are host arrays.
    """
    check_species(config, species)
    species_np = np.asarray(species)
    positions_np = np.asarray(positions)
    if positions_np.ndim == 2:
        positions_np = positions_np[None]
    if species_np.ndim != 1 or positions_np.shape[1:] != (species_np.shape[0], 3):
        raise DataFormatError(
            "init needs species (N,) and positions (N, 3) or (F, N, 3); "
            f"got {species_np.shape} and {np.shape(positions)}."
        )
    avg = average_num_neighbours(species_np, positions_np, config.cutoff)
    weights = _init_weights(
        key, jnp.asarray(species_np, jnp.int32), jnp.asarray(positions_np[0], jnp.float32), jnp.float32(avg), config
    )
    return NequipParams(
        config=config,
        weights=weights,
        species_shift=jnp.zeros(config.num_species, jnp.float32),
        species_scale=jnp.ones(config.num_species, jnp.float32),
        avg_num_neighbours=jnp.asarray(avg, jnp.float32),
    )


def _vmap_frames(fn, species, positions):
    """Applies ``fn(species (N,), positions (N, 3))`` to one frame or vmaps it over (B, N, 3)."""
    species = jnp.asarray(species)
    positions = jnp.asarray(positions)
    if positions.ndim == 2:
        return fn(species, positions)
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise DataFormatError(f"positions must be (N, 3) or (B, N, 3) in Å, got shape {positions.shape}.")
    return jax.vmap(fn, in_axes=(0 if species.ndim == 2 else None, 0))(species, positions)


@partial(jax.jit, static_argnames="shifted")
def _atomic_energies(params, species, positions, shifted):
    return _vmap_frames(lambda s, x: _frame_atomic_energies(params, s, x, shifted), species, positions)


@partial(jax.jit, static_argnames="shifted")
def _energy_and_forces(params, species, positions, shifted):
    def frame(s, x):
        energy, gradient = jax.value_and_grad(lambda x: jnp.sum(_frame_atomic_energies(params, s, x, shifted)))(x)
        return energy, -gradient

    return _vmap_frames(frame, species, positions)


def atomic_energies(
    params: NequipParams, species: ArrayLike, positions: ArrayLike, *, shifted: bool = True
) -> jax.Array:
    """Per-atom energies in eV (0 for padding atoms). Shapes: species (N,) or (B, N), positions
    (N, 3) or (B, N, 3) Å -> (N,) or (B, N). ``shifted=False`` leaves out the per-species shift.
    """
    check_species(params.config, species)
    return _atomic_energies(params, jnp.asarray(species), jnp.asarray(positions), shifted)


def energy_and_forces(
    params: NequipParams, species: ArrayLike, positions: ArrayLike, *, shifted: bool = True
) -> tuple[jax.Array, jax.Array]:
    """Total energy (eV) and forces -dE/dpositions (eV/Å).

    Shapes: species (N,) shared by the batch or (B, N); positions (B, N, 3) Å -> E (B,),
    F (B, N, 3); an unbatched frame (N, 3) gives E () and F (N, 3). ``shifted=False`` leaves the
    per-species shifts out of E (forces are the same); training compares that part with
    reference energies minus the shifts, which float32 can resolve far better than ~1e3 eV totals.
    Jitted inside (one program per shape), so calling it eagerly is fast; it also nests in jit.
    """
    check_species(params.config, species)
    return _energy_and_forces(params, jnp.asarray(species), jnp.asarray(positions), shifted)


class Prediction(NamedTuple):
    """Model outputs for a batch of frames. Shapes: energy (B,) eV without the per-species shifts
    (add ``atom_shift.sum(-1)`` in float64 for the total), forces (B, N, 3) eV/Å, atom_shift (B, N) eV."""

    energy: jax.Array
    forces: jax.Array
    atom_shift: jax.Array


def predict(params: NequipParams, species: ArrayLike, positions: ArrayLike) -> Prediction:
    """Energies, forces and per-atom shifts of frames, jit-compatible; species (B, N), positions (B, N, 3) Å."""
    energy, forces = energy_and_forces(params, species, jnp.asarray(positions, jnp.float32), shifted=False)
    species_index = jnp.asarray(_species_table(params.config))[jnp.asarray(species)]
    return Prediction(energy, forces, jnp.where(species == PADDING_SPECIES, 0.0, params.species_shift[species_index]))


def as_arrays(params: NequipParams) -> dict:
    """The arrays of ``params`` as a plain dict (for checkpoints); :func:`from_arrays` inverts it."""
    return {name: getattr(params, name) for name in ("weights", "species_shift", "species_scale", "avg_num_neighbours")}


def from_arrays(config: NequipConfig, arrays: dict) -> NequipParams:
    """``NequipParams`` of ``config`` from the dict of :func:`as_arrays`."""
    return NequipParams(config, **arrays)


def num_weights(params: NequipParams) -> int:
    """Number of trainable scalars."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params.weights)))


# -- per-species shift and scale ----------------------------------------------------------------
def species_counts(config: NequipConfig, species: ArrayLike) -> np.ndarray:
    """Atoms of each configured species. Shapes: species (N,) or (F, N) -> (S,) or (F, S)."""
    species = np.asarray(species)
    return np.stack([np.sum(species == z, axis=-1) for z in config.species], axis=-1)


def fit_species_shift_scale(
    config: NequipConfig, species: ArrayLike, energy: ArrayLike, forces: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per-species shift (eV/atom) and scale (eV) from training labels, on the host in float64.

    Shift: least squares of the frame energies on the species counts (minimum-norm solution);
    when every frame has the same composition (one molecule) that is degenerate, and the mean
    energy is split evenly over the atoms instead (every species gets ``mean(E) / N``). Scale:
    the RMS of the force components (eV/Å; times 1 Å gives eV), the same for every species, as in
    NequIP's default. Shapes: species (N,) or (F, N), energy (F,) eV, forces (F, N, 3) eV/Å.
    """
    check_species(config, species)
    energy = np.asarray(energy, dtype=np.float64)
    forces = np.asarray(forces, dtype=np.float64)
    species = np.asarray(species)
    if energy.ndim != 1 or forces.ndim != 3 or forces.shape[0] != energy.shape[0] or forces.shape[-1] != 3:
        raise DataFormatError(f"need energy (F,) and forces (F, N, 3); got {energy.shape} and {forces.shape}.")
    if energy.shape[0] == 0:
        raise DataFormatError("cannot fit the energy shift and scale on zero frames.")
    counts = np.broadcast_to(species_counts(config, species), (energy.shape[0], config.num_species)).astype(np.float64)
    compositions = np.unique(counts, axis=0)
    if compositions.shape[0] == 1:
        shift = np.full(config.num_species, np.mean(energy) / np.sum(compositions[0]))
    else:
        shift = np.linalg.lstsq(counts, energy, rcond=None)[0]
    real = np.broadcast_to(species != PADDING_SPECIES, forces.shape[:2])
    rms = float(np.sqrt(np.mean(forces[real] ** 2)))
    if not rms > 0:
        raise DataFormatError("all training forces are zero; the force RMS cannot set the energy scale.")
    return shift, np.full(config.num_species, rms)


def fit_shift_scale(params: NequipParams, species: ArrayLike, energy: ArrayLike, forces: ArrayLike) -> NequipParams:
    """``params`` with the per-species shift and scale of :func:`fit_species_shift_scale`."""
    shift, scale = fit_species_shift_scale(params.config, species, energy, forces)
    return params.replace(species_shift=jnp.asarray(shift, jnp.float32), species_scale=jnp.asarray(scale, jnp.float32))


def shift_energy(params: NequipParams, species: ArrayLike) -> np.ndarray:
    """Sum of the per-species shifts per frame, eV (host, float64). Shapes: species (N,)/(F, N) -> ()/(F,)."""
    shift = np.asarray(params.species_shift, dtype=np.float64)
    return species_counts(params.config, species).astype(np.float64) @ shift


def make_energy_fn(params: NequipParams, species: Sequence[int]) -> Callable[[jax.Array], jax.Array]:
    """``energy(positions (N, 3) Å) -> E eV`` for one molecule (for MD integrators, jax-md style)."""
    species = jnp.asarray(np.asarray(species), dtype=jnp.int32)
    check_species(params.config, species)
    return lambda positions: jnp.sum(_frame_atomic_energies(params, species, positions, True))


__all__ = [
    "CONFIGS",
    "MEDIUM",
    "PAPER",
    "TINY",
    "NequipConfig",
    "NequipParams",
    "Prediction",
    "as_arrays",
    "atomic_energies",
    "check_species",
    "energy_and_forces",
    "fit_shift_scale",
    "fit_species_shift_scale",
    "from_arrays",
    "init",
    "make_energy_fn",
    "num_weights",
    "predict",
    "shift_energy",
    "species_counts",
]
