"""The evolution operator's semi-Lagrangian step: a field advected by a motion field, differentiable.

Backward semi-Lagrangian: the value at pixel r after one step is the field at the departure point
r - v(r), bilinearly interpolated; departure points outside the domain read ``outside`` (0: no rain
flows in from beyond the radar). Motion is (2, H, W) = (u along columns, v along rows) in pixels per
step (see :mod:`.schema`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_bilinear(field: jax.Array, rows: jax.Array, cols: jax.Array, outside: float = 0.0) -> jax.Array:
    """``field`` (H, W) at fractional pixel positions ``rows``, ``cols`` (any same shape), bilinear; ``outside``
    beyond the grid (each of the four corners separately, so the edge fades over one pixel)."""
    h, w = field.shape
    r0, c0 = jnp.floor(rows), jnp.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0, c0 = r0.astype(jnp.int32), c0.astype(jnp.int32)

    def at(r, c):
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        return jnp.where(inside, field[jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1)], outside)

    top = at(r0, c0) * (1 - fc) + at(r0, c0 + 1) * fc
    bottom = at(r0 + 1, c0) * (1 - fc) + at(r0 + 1, c0 + 1) * fc
    return top * (1 - fr) + bottom * fr


def advect(field: jax.Array, motion: jax.Array, outside: float = 0.0) -> jax.Array:
    """One semi-Lagrangian step of ``field`` (H, W) by ``motion`` (2, H, W) pixels per step: x(r - v(r))."""
    h, w = field.shape
    rows, cols = jnp.meshgrid(jnp.arange(h, dtype=field.dtype), jnp.arange(w, dtype=field.dtype), indexing="ij")
    return sample_bilinear(field, rows - motion[1], cols - motion[0], outside)


#: ``advect`` over a leading batch axis: fields (B, H, W), motions (B, 2, H, W).
advect_batch = jax.vmap(advect, in_axes=(0, 0, None))
