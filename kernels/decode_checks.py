"""Input validation of the decode kernels: every bad input is one ``AccelsimError`` with a one-line message.

Checks read shapes and dtypes only, plus values where they are known (lengths, page tables and
the layer index outside ``jit``). A stacked cache is checked as its per-layer view.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from accelsim.errors import AccelsimError

_FLOAT_DTYPES = ("float32", "bfloat16", "float16")
_STORED_DTYPES = ("float8_e4m3fn",)  # a cache stored narrow: each block is widened to q's dtype in the kernel


def _concrete(x: Any) -> np.ndarray | None:
    """x as a numpy array when its values are known (not under jit), else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def check_dims(name: str, x: Any, ndim: int) -> None:
    if x.ndim != ndim:
        raise AccelsimError(f"decode: {name} must be {ndim}-D, got shape {tuple(x.shape)}")
    if any(d <= 0 for d in x.shape):
        raise AccelsimError(f"decode: {name} has a non-positive dimension: shape {tuple(x.shape)}")


def _check_float(name: str, x: Any) -> None:
    if jnp.dtype(x.dtype).name not in _FLOAT_DTYPES:
        raise AccelsimError(f"decode: {name} dtype {x.dtype} is not executable: use float32 or bfloat16")


def _check_block(block_kv: Any) -> None:
    if not isinstance(block_kv, (int, np.integer)) or isinstance(block_kv, bool) or block_kv <= 0:
        raise AccelsimError(f"decode: block_kv must be a positive integer, got {block_kv!r}")


def per_layer(k: Any, v: Any, layer: Any) -> tuple[Any, Any]:
    """k and v as one layer sees them: unchanged for a per-layer cache (``layer`` None); for a stacked
    cache, the layer index is checked and the leading layer axis dropped (shape and dtype only)."""
    if layer is None:
        return k, v
    check_dims("stacked k cache", k, 5)
    check_dims("stacked v cache", v, 5)
    if jnp.ndim(layer) > 1 or jnp.size(layer) != 1 or not jnp.issubdtype(jnp.result_type(layer), jnp.integer):
        raise AccelsimError(f"decode: layer must be one integer index, got shape {jnp.shape(layer)} "
                            f"dtype {jnp.result_type(layer)}")
    index = _concrete(layer)
    if index is not None and not 0 <= int(index.reshape(-1)[0]) < k.shape[0]:
        raise AccelsimError(f"decode: layer {int(index.reshape(-1)[0])} is outside the stacked cache's "
                            f"{k.shape[0]} layers")
    return (jax.ShapeDtypeStruct(k.shape[1:], k.dtype), jax.ShapeDtypeStruct(v.shape[1:], v.dtype))


def _check_q_kv(q: Any, k: Any, v: Any) -> tuple[int, int, int, int]:
    """q (B, H, D) against k, v (X, G, S, D); returns (B, H, G, D)."""
    check_dims("q", q, 3)
    check_dims("k cache", k, 4)
    check_dims("v cache", v, 4)
    if k.shape != v.shape:
        raise AccelsimError(f"decode: k and v caches differ in shape: {tuple(k.shape)} vs {tuple(v.shape)}")
    _check_float("q", q)
    for name, x in (("k cache", k), ("v cache", v)):
        if jnp.dtype(x.dtype).name not in _FLOAT_DTYPES + _STORED_DTYPES:
            raise AccelsimError(f"decode: {name} dtype {x.dtype} is not executable: use float32, bfloat16 or "
                                "float8_e4m3fn (stored, attended in q's dtype)")
    if k.dtype != v.dtype or (k.dtype != q.dtype and jnp.dtype(k.dtype).name not in _STORED_DTYPES):
        raise AccelsimError(f"decode: q and cache dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    (b, h, d), g = q.shape, k.shape[1]
    if k.shape[3] != d:
        raise AccelsimError(f"decode: head_dim of q ({d}) and the cache ({k.shape[3]}) differ")
    if h % g:
        raise AccelsimError(f"decode: {g} kv heads do not divide {h} query heads")
    return b, h, g, d


def _check_lengths(lengths: Any, batch: int, capacity: int, what: str) -> None:
    if lengths.ndim != 1 or lengths.shape[0] != batch:
        raise AccelsimError(f"decode: lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise AccelsimError(f"decode: lengths must be integers, got {lengths.dtype}")
    vals = _concrete(lengths)
    if vals is not None:
        if (vals < 1).any():
            raise AccelsimError(f"decode: lengths must be >= 1 (they count the new token), got min {int(vals.min())}")
        if (vals > capacity).any():
            raise AccelsimError(f"decode: a context of {int(vals.max())} positions is longer than {what} ({capacity})")


def check_paged(q: Any, k_pages: Any, v_pages: Any, page_table: Any, lengths: Any, block_kv: int,
                layer: Any = None) -> tuple[int, int, int, int, int, int]:
    """Returns (B, H, G, D, page_size, max_pages)."""
    k_pages, v_pages = per_layer(k_pages, v_pages, layer)
    b, h, g, d = _check_q_kv(q, k_pages, v_pages)
    _check_block(block_kv)
    num_pages, page_size = k_pages.shape[0], k_pages.shape[2]
    if page_table.ndim != 2 or page_table.shape[0] != b or page_table.shape[1] <= 0:
        raise AccelsimError(f"decode: page_table must have shape ({b}, max_pages), got {tuple(page_table.shape)}")
    if not jnp.issubdtype(page_table.dtype, jnp.integer):
        raise AccelsimError(f"decode: page_table must be integers, got {page_table.dtype}")
    if block_kv % page_size:
        raise AccelsimError(f"decode: page size {page_size} does not fit block_kv {block_kv}: block_kv must be a multiple of it")
    max_pages = page_table.shape[1]
    _check_lengths(lengths, b, max_pages * page_size,
                   f"the {max_pages} pages of {page_size} positions a sequence can hold")
    table = _concrete(page_table)
    if table is not None and ((table < 0) | (table >= num_pages)).any():
        raise AccelsimError(f"decode: page_table holds page indices outside [0, {num_pages})")
    return b, h, g, d, page_size, max_pages


def check_contiguous(q: Any, k_cache: Any, v_cache: Any, lengths: Any, block_kv: int,
                     layer: Any = None) -> tuple[int, int, int, int]:
    """Returns (B, H, G, D)."""
    k_cache, v_cache = per_layer(k_cache, v_cache, layer)
    b, h, g, d = _check_q_kv(q, k_cache, v_cache)
    _check_block(block_kv)
    if k_cache.shape[0] != b:
        raise AccelsimError(f"decode: batch of q ({b}) and the cache ({k_cache.shape[0]}) differ")
    _check_lengths(lengths, b, k_cache.shape[2], "the cache")
    return b, h, g, d


def check_new(k_new: Any, v_new: Any, b: int, g: int, d: int, dtype: Any) -> None:
    """k_new, v_new must be (B, G, D) in the cache's dtype."""
    for name, x in (("k_new", k_new), ("v_new", v_new)):
        check_dims(name, x, 3)
        if x.shape != (b, g, d):
            raise AccelsimError(f"decode: {name} must have shape {(b, g, d)}, got {tuple(x.shape)}")
        if x.dtype != dtype:
            raise AccelsimError(f"decode: {name} dtype {x.dtype} differs from the cache's {dtype}")


def check_splits(splits: Any) -> None:
    if not isinstance(splits, int) or isinstance(splits, bool) or splits < 1:
        raise AccelsimError(f"decode: splits must be a positive integer (got {splits!r})")
