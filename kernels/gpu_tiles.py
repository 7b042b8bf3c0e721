"""Masked tile loads and stores for the GPU (Triton) forms of our kernels.

Triton reads and writes through raw pointers: a block that runs past an array's edge is NOT
padded or clipped (as Pallas does for the grid form), so every GPU-form load of a ragged tile is
masked (``other=0``) and every ragged store is masked. The same calls run in interpret mode
(blocks there are padded with NaN, which the masks replace), so the GPU forms are testable on CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental.pallas import triton as pl_triton


def in_bounds(start, size: int, bound) -> jax.Array:
    """Positions start .. start + size - 1 that lie below ``bound`` (a bool vector of ``size``)."""
    return start + lax.broadcasted_iota(jnp.int32, (size,), 0) < bound


def edge_mask(start, size: int, bound: int) -> jax.Array | None:
    """``in_bounds`` for tiles of ``size`` along a static ``bound``: None (no mask) when ``size`` divides it."""
    return None if bound % size == 0 else in_bounds(start, size, bound)


def tile_mask(rows: jax.Array | None, cols: jax.Array | None) -> jax.Array | None:
    """The 2-D mask of a tile from its row and column masks (None = all valid)."""
    if rows is None and cols is None:
        return None
    if rows is None:
        return cols[None, :]
    if cols is None:
        return rows[:, None]
    return jnp.logical_and(rows[:, None], cols[None, :])


def load(ref, mask: jax.Array | None) -> jax.Array:
    """``ref[...]`` with the masked-out elements read as zero (no load issued for them on GPU)."""
    if mask is None:
        return ref[...]
    shape = ref.shape
    return pl_triton.load(ref, mask=jnp.broadcast_to(mask, shape), other=jnp.zeros(shape, ref.dtype))


def store(ref, value: jax.Array, mask: jax.Array | None) -> None:
    """``ref[...] = value`` for the masked-in elements only."""
    value = value.astype(ref.dtype)
    if mask is None:
        ref[...] = value
    else:
        pl_triton.store(ref, value, mask=jnp.broadcast_to(mask, value.shape))
