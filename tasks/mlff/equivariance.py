"""The equivariance study: E invariant and F equivariant under rotations (``e3nn.rand_matrix``),
translations and same-species permutations of the atoms."""

from __future__ import annotations

from collections.abc import Callable

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxbench.studies import StudyResult, make_rows, plots
from jaxbench.studies.context import Study, StudyContext, StudyInfo

from . import nequip


def species_permutation(key: jax.Array, species: ArrayLike) -> np.ndarray:
    """A random permutation of atom indices that only swaps atoms of the same species."""
    species = np.asarray(species)
    perm = np.empty(len(species), dtype=int)  # grouped by species: in index order <- in random order
    perm[np.argsort(species, kind="stable")] = np.lexsort((np.asarray(jax.random.uniform(key, species.shape)), species))
    return perm


def equivariance_test(
    energy_forces: Callable,
    positions: ArrayLike,
    species: ArrayLike,
    key: jax.Array,
    n_trials: int = 8,
    translation_scale: float = 1.0,
) -> StudyResult:
    """Max |E(P(xR^T + t)) - E(x)|, |F(P(xR^T + t)) - P(F(x)R^T)| per trial and kind; ``energy_forces``: x -> E, F.

    Shapes: positions x (B, N, 3) Å, E (B,) eV, F (B, N, 3) eV/Å; "_rel" errors are relative to max |E|, |F| of x.
    """
    positions, identity = jnp.asarray(positions), np.arange(len(species))
    e0, f0 = energy_forces(positions)
    scale = {"energy": float(jnp.max(jnp.abs(e0))) or 1.0, "forces": float(jnp.max(jnp.abs(f0))) or 1.0}
    worst, rows, eye, zero = {}, [], jnp.eye(3, dtype=positions.dtype), jnp.zeros(3, positions.dtype)
    for trial in range(n_trials):
        k_rot, k_shift, k_perm = jax.random.split(jax.random.fold_in(key, trial), 3)
        rot, perm = e3nn.rand_matrix(k_rot, dtype=positions.dtype), species_permutation(k_perm, species)
        shift = translation_scale * jax.random.normal(k_shift, (3,), positions.dtype)
        cases = {
            "rotation": (rot, zero, identity),
            "translation": (eye, shift, identity),
            "permutation": (eye, zero, perm),
            "all": (rot, shift, perm),
        }
        for kind, (r, t, p) in cases.items():
            e1, f1 = energy_forces((positions @ r.T + t[None, None, :])[:, p])
            error = {"energy": jnp.max(jnp.abs(e1 - e0)), "forces": jnp.max(jnp.abs(f1 - (f0 @ r.T)[:, p]))}
            values = {
                f"{q}_{how}": float(v) / (scale[q] if how == "rel" else 1.0)
                for q, v in error.items()
                for how in ("abs", "rel")
            }
            rows += make_rows(kind, f"trial {trial}", trial, trial, values, support=len(positions))
            worst[kind] = {m: max(v, worst.get(kind, {}).get(m, 0.0)) for m, v in values.items()}
    return StudyResult("equivariance", tuple(rows), {"max_errors": worst, "n_trials": n_trials})


def _equivariance(ctx: StudyContext) -> StudyResult:
    species, frames = np.asarray(ctx.items.species)[0], jnp.asarray(np.asarray(ctx.items.positions)[:4], jnp.float32)
    # Without the per-species shifts: relative errors then compare with the learned part of E.
    return equivariance_test(
        lambda x: nequip.energy_and_forces(ctx.shared, species, x, shifted=False),
        frames,
        species,
        ctx.key,
        n_trials=ctx.config.studies.equivariance_trials,
    )


EQUIVARIANCE = Study(
    StudyInfo(
        "equivariance",
        "Equivariance test",
        "Is the trained model's energy invariant, and are its forces equivariant, "
        "under rotations, translations and same-species permutations?",
        lambda r: [
            plots.metric_vs_x(r, "study_equivariance", "Errors per random transformation (one line per kind).", "trial")
        ],
    ),
    _equivariance,
)
