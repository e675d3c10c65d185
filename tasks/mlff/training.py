"""Training and evaluation of NequIP force fields: one model, or M models in one vmapped program.

Loss (per batch of B frames of N real atoms), in eV units::

    L = lambda_E * mean_b ((E_b - E_b^ref) / N)^2 + lambda_F * mean_{b,i,c} (F_bic - F_bic^ref)^2

with lambda_E = 1 (eV/atom)^-2 and lambda_F = 1000 (eV/Å)^-2 by default: the per-atom energy
plus force MSE of MACE's weighted energy-forces loss, weighted as the task brief asks. Energies
enter as residuals ``E - sum_i shift[s_i]`` computed in float64 on the host, so float32 training
never subtracts two ~1e3 eV numbers. Adam with a cosine-decayed learning rate; each step draws
its batch from the training indices with ``fold_in(batch_key, step)``, so the batches do not
depend on how the run is chunked, checkpointed or resumed.

The loop is ``lax.scan`` over chunks of ``checkpoint_every`` steps (one compiled program per
chunk length). With a ``checkpoint_dir`` the state (weights, optimizer state, step, history) is
saved with orbax after every chunk; calling :func:`train_many` again with the same directory
resumes from the latest checkpoint and ends with exactly the parameters of an uninterrupted run.
One model is the vmapped program with M = 1 (:func:`train`), so there is one code path.
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
from jax.typing import ArrayLike

from jaxbench.errors import ConfigError, DataFormatError
from jaxbench.kernels.training import checkpointed_loop, empty_history
from jaxbench.records import sha256_arrays

from . import nequip
from .graph import PADDING_SPECIES
from .nequip import NequipConfig, NequipParams
from .settings import TrainSettings

#: Element symbols for reports (atomic number -> symbol); others print as "Z<number>".
ELEMENT_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 15: "P", 16: "S", 17: "Cl"}


class Frames(NamedTuple):
    """Labelled frames of one molecule (host arrays). ``data.Trajectory`` has the same fields.

    Shapes: species (N,) int atomic numbers; positions (F, N, 3) Å; energy (F,) eV;
    forces (F, N, 3) eV/Å.
    """

    species: np.ndarray
    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray


def as_frames(data: Any) -> Frames:
    """Any object with ``species``, ``positions``, ``energy``, ``forces`` as checked host Frames."""
    missing = [name for name in Frames._fields if not hasattr(data, name)]
    if missing:
        raise DataFormatError(
            f"training data of type {type(data).__name__} lacks {missing}; pass a Frames or a "
            "data.Trajectory (fields species, positions, energy, forces)."
        )
    species = np.asarray(data.species)
    positions = np.asarray(data.positions, dtype=np.float64)
    energy = np.asarray(data.energy, dtype=np.float64)
    forces = np.asarray(data.forces, dtype=np.float64)
    num_frames, num_atoms = energy.shape[0], species.shape[0]
    if species.ndim != 1 or not np.issubdtype(species.dtype, np.integer):
        raise DataFormatError(f"species must be (N,) integer atomic numbers, got {species.dtype} {species.shape}.")
    for name, array, shape in (
        ("energy", energy, (num_frames,)),
        ("positions", positions, (num_frames, num_atoms, 3)),
        ("forces", forces, (num_frames, num_atoms, 3)),
    ):
        if array.shape != shape:
            raise DataFormatError(f"{name} must have shape {shape} (F frames, N atoms), got {array.shape}.")
    for name, array in (("positions", positions), ("energy", energy), ("forces", forces)):
        if not np.all(np.isfinite(array)):
            bad = np.unique(np.nonzero(~np.isfinite(array))[0])
            raise DataFormatError(f"{name} holds non-finite values (frames {bad[:10].tolist()}...).")
    return Frames(species.astype(np.int32), positions, energy, forces)


def _check_indices(idx: np.ndarray, num_frames: int, what: str) -> np.ndarray:
    idx = np.asarray(idx)
    if not np.issubdtype(idx.dtype, np.integer) or idx.size == 0:
        raise DataFormatError(f"{what} must be a non-empty integer index array, got {idx.dtype} {idx.shape}.")
    if idx.min() < 0 or idx.max() >= num_frames:
        raise DataFormatError(
            f"{what} holds frame indices outside [0, {num_frames}): min {idx.min()}, max {idx.max()}."
        )
    return idx.astype(np.int32)


# -- state --------------------------------------------------------------------------------------
class TrainState(NamedTuple):
    """Everything a resumed run needs: step () int32, params, optimizer state (of params.weights)."""

    step: jax.Array
    params: NequipParams
    opt_state: Any


class TrainHistory(NamedTuple):
    """Per-step values on the training batch. Shapes: (steps,), or (M, steps) for train_many.

    loss: the weighted loss; energy_mse: per-atom energy MSE, (eV/atom)^2; force_mse: force
    component MSE, (eV/Å)^2. Steps not yet run are NaN.
    """

    loss: np.ndarray
    energy_mse: np.ndarray
    force_mse: np.ndarray


def optimizer(settings: TrainSettings) -> optax.GradientTransformation:
    """Adam with a cosine learning-rate decay over ``settings.steps``."""
    schedule = optax.cosine_decay_schedule(
        settings.learning_rate, settings.steps, alpha=settings.final_learning_fraction
    )
    return optax.adam(schedule)


def loss_terms(
    params: NequipParams,
    species: ArrayLike,
    positions: ArrayLike,
    energy_residual: ArrayLike,
    forces: ArrayLike,
    settings: TrainSettings,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """(loss, (energy_mse, force_mse)) of a batch. Shapes: species (N,), positions/forces (B, N, 3),
    energy_residual (B,) eV = reference energy minus the summed per-species shifts."""
    real = species != PADDING_SPECIES
    num_real = jnp.sum(real).astype(positions.dtype)
    energy, predicted_forces = nequip.energy_and_forces(params, species, positions, shifted=False)
    energy_mse = jnp.mean(((energy - energy_residual) / num_real) ** 2)
    squared = jnp.sum((predicted_forces - forces) ** 2, axis=-1)  # (B, N)
    force_mse = jnp.sum(jnp.where(real[None, :], squared, 0.0)) / (3.0 * num_real * positions.shape[0])
    loss = settings.energy_weight * energy_mse + settings.force_weight * force_mse
    return loss, (energy_mse, force_mse)


def _chunk(
    state: TrainState, species, positions, energy_residual, forces, train_idx, batch_key, *, settings, num_steps
):
    """``num_steps`` optimizer steps (lax.scan). Shapes: positions/forces (F, N, 3) on device,
    energy_residual (F,), train_idx (n,) int32; returns the state and per-step metrics."""
    tx = optimizer(settings)

    def weight_loss(weights, rows):
        params = state.params.replace(weights=weights)
        return loss_terms(params, species, positions[rows], energy_residual[rows], forces[rows], settings)

    def step(carry, _):
        step_index, weights, opt_state = carry
        step_key = jax.random.fold_in(batch_key, step_index)
        rows = jax.random.choice(step_key, train_idx, (settings.batch_size,), replace=False)
        (loss, (energy_mse, force_mse)), grads = jax.value_and_grad(weight_loss, has_aux=True)(weights, rows)
        updates, opt_state = tx.update(grads, opt_state, weights)
        return (step_index + 1, optax.apply_updates(weights, updates), opt_state), (loss, energy_mse, force_mse)

    carry = (state.step, state.params.weights, state.opt_state)
    (step_index, weights, opt_state), metrics = jax.lax.scan(step, carry, None, length=num_steps)
    return TrainState(step_index, state.params.replace(weights=weights), opt_state), metrics


@partial(jax.jit, static_argnames=("settings", "num_steps"))
def _train_chunk_many(
    states, species, positions, energy_residuals, forces, train_idx, batch_keys, *, settings, num_steps
):
    chunk = partial(_chunk, settings=settings, num_steps=num_steps)
    return jax.vmap(chunk, in_axes=(0, None, None, 0, None, 0, 0))(
        states, species, positions, energy_residuals, forces, train_idx, batch_keys
    )


def _initial_state(key, frames: Frames, train_idx: np.ndarray, config: NequipConfig, settings: TrainSettings):
    """(state, batch_key, energy residuals (F,) float32) for one model; fits shift/scale on train_idx."""
    init_key, batch_key = jax.random.split(key)
    params = nequip.init(init_key, config, frames.species, frames.positions[train_idx])
    params = nequip.fit_shift_scale(params, frames.species, frames.energy[train_idx], frames.forces[train_idx])
    residual = frames.energy - nequip.shift_energy(params, frames.species)
    state = TrainState(jnp.zeros((), jnp.int32), params, optimizer(settings).init(params.weights))
    return state, batch_key, jnp.asarray(residual, jnp.float32)


# -- checkpoint metadata (the loop is jaxbench.kernels.training) ------------------------------------
def _metadata(config, settings, frames, train_idx, num_models):
    return {
        "model_config": dataclasses.asdict(config),
        "settings": dataclasses.asdict(settings),
        "num_models": num_models,
        "train_idx_sha256": sha256_arrays({"train_idx": np.asarray(train_idx)}),
        "data_sha256": sha256_arrays(frames._asdict()),
    }


def train_many(
    keys: jax.Array,
    data: Any,
    train_idx_stack: ArrayLike,
    config: NequipConfig,
    *,
    steps: int,
    batch_size: int = 5,
    learning_rate: float = 1e-2,
    final_learning_fraction: float = 0.01,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 100,
    callback: Callable[[int, TrainHistory], None] | None = None,
) -> tuple[NequipParams, TrainHistory]:
    """Trains M NequIP models on the frames ``train_idx_stack[m]`` of ``data`` in one vmapped program.

    ``data``: a :class:`Frames` or anything with the same fields (``data.Trajectory``). Shapes:
    keys (M,) typed keys, train_idx_stack (M, n) (equal-size training sets). The per-species
    shift/scale and the average neighbour count of each model are fitted on its training frames.
    With ``checkpoint_dir`` the run saves every ``checkpoint_every`` steps and resumes from the
    latest checkpoint there (same data, indices, config and settings, else ConfigError).
    ``callback(step, history)`` runs after every chunk. Returns params with a leading model axis
    M on every array and a history of shape (M, steps).
    """
    frames = as_frames(data)
    train_idx_stack = _check_indices(train_idx_stack, frames.energy.shape[0], "train_idx_stack")
    if train_idx_stack.ndim != 2:
        raise DataFormatError(
            f"train_idx_stack must be (M, n): M equal-size index sets, got shape {train_idx_stack.shape}."
        )
    num_models = train_idx_stack.shape[0]
    if keys.shape != (num_models,):
        raise ConfigError(f"need one key per model: keys {keys.shape} for {num_models} index sets.")
    settings = TrainSettings(
        steps, batch_size, learning_rate, final_learning_fraction, energy_weight, force_weight, checkpoint_every
    )
    if train_idx_stack.shape[1] < batch_size:
        raise ConfigError(f"batch_size {batch_size} exceeds the {train_idx_stack.shape[1]} training frames per model.")
    initial = [_initial_state(keys[m], frames, train_idx_stack[m], config, settings) for m in range(num_models)]
    state = jax.tree.map(lambda *xs: jnp.stack(xs), *(s for s, _, _ in initial))
    batch_keys = jnp.stack([k for _, k, _ in initial])
    residuals = jnp.stack([r for _, _, r in initial])
    species = jnp.asarray(frames.species)
    positions = jnp.asarray(frames.positions, jnp.float32)
    forces = jnp.asarray(frames.forces, jnp.float32)
    idx = jnp.asarray(train_idx_stack)

    def run_chunk(state, num_steps):
        return _train_chunk_many(
            state, species, positions, residuals, forces, idx, batch_keys, settings=settings, num_steps=num_steps
        )

    meta = _metadata(config, settings, frames, train_idx_stack, num_models)
    history = empty_history(TrainHistory, (num_models, steps))
    state, history = checkpointed_loop(
        state, history, run_chunk, settings.steps, settings.checkpoint_every, checkpoint_dir, meta, callback
    )
    return state.params, history


def train(
    key: jax.Array,
    data: Any,
    train_idx: ArrayLike,
    config: NequipConfig,
    *,
    callback: Callable[[int, TrainHistory], None] | None = None,
    **options,
) -> tuple[NequipParams, TrainHistory]:
    """One model: :func:`train_many` with M = 1 (same options); returns (params, history of shape (steps,))."""

    def first(history: TrainHistory) -> TrainHistory:
        return TrainHistory(*(np.asarray(h)[0] for h in history))

    hook = None if callback is None else (lambda step, history: callback(step, first(history)))
    params, history = train_many(jnp.stack([key]), data, np.asarray(train_idx)[None], config, callback=hook, **options)
    return unstack(params, 0), first(history)


def unstack(params: NequipParams, index: int) -> NequipParams:
    """Model ``index`` of params with a leading model axis (from :func:`train_many`)."""
    return jax.tree.map(lambda x: x[index], params)


# -- evaluation ---------------------------------------------------------------------------------
class Evaluation(NamedTuple):
    """Per-frame and per-atom errors (prediction minus reference).

    Shapes: frame (n,) frame indices; energy_error_mev (n,) meV; force_error_mev (n, N, 3)
    meV/Å; force_error_norm_mev (n, N) meV/Å, the length of each atom's force error vector.
    """

    frame: np.ndarray
    energy_error_mev: np.ndarray
    force_error_mev: np.ndarray
    force_error_norm_mev: np.ndarray


@jax.jit
def _predict(params, species, positions):
    return nequip.energy_and_forces(params, species, positions, shifted=False)


def evaluate(params: NequipParams, data: Any, idx: ArrayLike, *, batch_size: int = 32) -> Evaluation:
    """Energy and force errors of ``params`` on the frames ``idx`` of ``data`` (per sample).

    Energies are compared as residuals from the per-species shifts, in float64 on the host.
    Frames go through the model in fixed batches of ``batch_size`` (the last is padded by
    repeating a frame), so any ``idx`` reuses one compiled program.
    """
    frames = as_frames(data)
    idx = _check_indices(idx, frames.energy.shape[0], "idx")
    nequip.check_species(params.config, frames.species)
    species = jnp.asarray(frames.species)
    padded = np.concatenate([idx, np.full((-idx.shape[0]) % batch_size, idx[-1], dtype=idx.dtype)])
    energies, forces = [], []
    for start in range(0, padded.shape[0], batch_size):
        rows = padded[start : start + batch_size]
        energy, force = _predict(params, species, jnp.asarray(frames.positions[rows], jnp.float32))
        energies.append(np.asarray(energy, np.float64))
        forces.append(np.asarray(force, np.float64))
    n = idx.shape[0]
    energy = np.concatenate(energies)[:n] + nequip.shift_energy(params, frames.species)
    force = np.concatenate(forces)[:n]
    force_error = 1e3 * (force - frames.forces[idx])
    return Evaluation(
        frame=idx,
        energy_error_mev=1e3 * (energy - frames.energy[idx]),
        force_error_mev=force_error,
        force_error_norm_mev=np.linalg.norm(force_error, axis=-1),
    )


def element_symbol(atomic_number: int) -> str:
    """``"H"`` for 1, ``"C"`` for 6, ...; ``"Z<n>"`` for elements without a listed symbol."""
    return ELEMENT_SYMBOLS.get(int(atomic_number), f"Z{int(atomic_number)}")


def force_mae_per_species(evaluation: Evaluation, species: ArrayLike) -> dict[str, float]:
    """Force-component MAE (meV/Å) over all evaluated frames, per element present (e.g. H, C, O)."""
    species = np.asarray(species)
    out = {}
    for z in sorted(set(species.tolist()) - {PADDING_SPECIES}):
        out[element_symbol(z)] = float(np.mean(np.abs(evaluation.force_error_mev[:, species == z, :])))
    return out


def summarise(evaluation: Evaluation, species: ArrayLike) -> dict[str, float]:
    """Aggregates: energy MAE/RMSE per molecule (meV), energy MAE per atom (meV/atom), force-component
    MAE/RMSE (meV/Å) over real atoms, frames."""
    real = np.asarray(species) != PADDING_SPECIES
    force = evaluation.force_error_mev[:, real, :]
    energy = evaluation.energy_error_mev
    return {
        "frames": float(energy.shape[0]),
        "energy_mae_mev": float(np.mean(np.abs(energy))),
        "energy_mae_mev_per_atom": float(np.mean(np.abs(energy))) / int(real.sum()),
        "energy_rmse_mev": float(np.sqrt(np.mean(energy**2))),
        "force_mae_mev_per_a": float(np.mean(np.abs(force))),
        "force_rmse_mev_per_a": float(np.sqrt(np.mean(force**2))),
    }
