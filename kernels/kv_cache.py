"""The KV caches the decode kernels read and write, and how a kernel's BlockSpecs address one layer of them.

Layouts
-------
contiguous  ``KVCache(k, v)``: k, v (B, G, S, D), or stacked over layers (L, B, G, S, D).
paged       ``PagedKVCache(k_pages, v_pages, page_table)``: pages (P, G, page_size, D), or stacked
            (L, P, G, page_size, D), and page_table int32 (B, max_pages); position t of sequence b
            lives in page ``page_table[b, t // page_size]`` at offset ``t % page_size``.

Stacked caches
--------------
A model's layer scan carries one stacked cache and updates it in place. A kernel then takes the
layer index as its LAST scalar-prefetch operand, an int32 array of shape (1,); every cache
BlockSpec gains a leading squeezed layer axis at block index ``layer[0]`` (``cache_spec`` builds it
from the per-layer index map), and every other BlockSpec's index map ignores trailing prefetch
operands (``*_``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.backend import kernel_target


class KVCache(NamedTuple):
    """Contiguous cache: k, v (B, G, S, D), or stacked (L, B, G, S, D)."""
    k: jax.Array
    v: jax.Array


class PagedKVCache(NamedTuple):
    """Paged cache: k_pages, v_pages (P, G, page_size, D) or stacked (L, P, ...); page_table int32 (B, max_pages)."""
    k_pages: jax.Array
    v_pages: jax.Array
    page_table: jax.Array


def scalar_prefetch_interpret(interpret: bool | None) -> bool:
    """The decode kernels use TPU scalar prefetch, which only Mosaic lowers: interpret everywhere else."""
    return (kernel_target() != "tpu") if interpret is None else interpret


def layer_operand(layer: jax.Array | int | None) -> jax.Array | None:
    """The layer of a stacked cache as the (1,) int32 scalar-prefetch operand; None for a per-layer cache."""
    return None if layer is None else jnp.asarray(layer, jnp.int32).reshape(1)


def with_layer(prefetch: list[jax.Array], layer: jax.Array | None) -> list[jax.Array]:
    """The scalar-prefetch operands of a kernel, with the layer index last when the cache is stacked."""
    return prefetch if layer is None else [*prefetch, layer]


def cache_spec(block_shape: tuple, index_map: Callable, *, stacked: bool) -> pl.BlockSpec:
    """A cache operand's BlockSpec from its per-layer ``index_map(*grid, *prefetch)``; on a stacked
    cache the block gains the squeezed layer axis at ``layer[0]``, the last prefetch operand, which
    ``index_map`` does not see."""
    if not stacked:
        return pl.BlockSpec(block_shape, index_map)
    return pl.BlockSpec((None, *block_shape), lambda *args: (args[-1][0], *index_map(*args[:-1])))


def gather_pages(pages: jax.Array, page_table: jax.Array) -> jax.Array:
    """(P, G, page_size, D) pages + (B, max_pages) table -> contiguous (B, G, max_pages * page_size, D)."""
    x = pages[page_table]  # (B, max_pages, G, page_size, D)
    b, mp, g, ps, d = x.shape
    return x.transpose(0, 2, 1, 3, 4).reshape(b, g, mp * ps, d)
