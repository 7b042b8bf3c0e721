"""Building blocks shared by the systolic emulators: register shifts, skew delay lines, static sizes.

Used by ``kernels/systolic.py`` (one fold at a time) and ``kernels/systolic_stream.py`` (folds
back to back); it holds no dataflow of its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def count(x) -> jax.Array:
    """Number of set flags, as int32 whatever the x64 setting."""
    return jnp.sum(x, dtype=jnp.int32)


def shift_right(x, edge) -> jax.Array:
    """Each row moves one PE right; ``edge`` (rows,) enters column 0."""
    return jnp.concatenate([edge[:, None], x[:, :-1]], axis=1)


def shift_down(x, edge) -> jax.Array:
    """Each column moves one PE down; ``edge`` (cols,) enters row 0."""
    return jnp.concatenate([edge[None, :], x[:-1, :]], axis=0)


def row(x, i) -> jax.Array:
    """Row i (traced) of a 2-D array."""
    return jax.lax.dynamic_index_in_dim(x, i, axis=0, keepdims=False)


def delay_line(stages, x):
    """One clock of a triangular skew buffer: lane l presents what entered it l cycles ago.

    ``stages`` (L, L): stage s of lane l holds what entered lane l s cycles ago; ``x`` (L,) enters
    stage 0 now. Returns (new stages, what each lane presents to the array this cycle).
    """
    new = jnp.concatenate([x[:, None], stages[:, :-1]], axis=1)
    return new, jnp.diagonal(new)


def bucket(n: int, floor: int) -> int:
    """Static size for a dynamic extent: the next power of two, at least ``floor``."""
    return max(floor, 1 << (n - 1).bit_length())


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def collect(values: np.ndarray, tags: np.ndarray, folds: np.ndarray, n_folds: int, rows: int) -> np.ndarray:
    """The output buffer: a value that left column j with tag r, of fold f, goes to out[f, r, j].

    ``values``/``tags``/``folds``: (..., GC) per exit slot; a tag of -1 marks no value.
    """
    cols = tags.shape[-1]
    v, t, f = (x.reshape(-1, cols) for x in (values, tags, folds))
    s, j = np.nonzero(t >= 0)
    out = np.zeros((n_folds, rows, cols), np.float32)
    out[f[s, j], t[s, j], j] = v[s, j]
    return out
