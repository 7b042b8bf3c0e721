"""The KV-cache append kernel: write each sequence's new k and v row into the cache, in place.

Grid (B, G); scalar prefetch: lengths (and the flattened page table for a paged cache, and the
layer index last for a stacked cache). k_new, v_new (B, G, D) are viewed (B, G, 1, D) and read as
(-, -, 1, D) blocks at (b, g, 0, 0). The caches go in with memory space ANY (never copied) and are
aliased to the outputs (``input_output_aliases``), whose (-, -, 1, D) block is written at
    contiguous: (b, g, lengths[b] - 1, 0)
    paged:      (page_table[b, (lengths[b]-1) // page_size], g, (lengths[b]-1) % page_size, 0)
with a leading (layer[0],) for a stacked cache. Reads and writes are 2 * B * G * D * itemsize each.
GPU targets run the Triton form (``kernels.decode_gpu.append_gpu``): the same rows, no scalar prefetch.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from accelsim.errors import AccelsimError
from kernels.backend import kernel_form
from kernels.grid_exec import kernel_call
from kernels.decode_checks import check_contiguous, check_dims, check_new, check_paged
from kernels.decode_gpu import append_gpu
from kernels.kv_cache import (KVCache, PagedKVCache, cache_spec, layer_operand, scalar_prefetch_interpret,
                              with_layer)


def _append_kernel(*refs, n_prefetch):
    k_new, v_new = refs[n_prefetch], refs[n_prefetch + 1]
    k_out, v_out = refs[-2], refs[-1]  # refs[n_prefetch + 2: n_prefetch + 4] are the ANY caches
    k_out[...] = k_new[...]
    v_out[...] = v_new[...]


def _append_call(prefetch: list[jax.Array], layer: jax.Array | None, k_new: jax.Array, v_new: jax.Array,
                 k_store: jax.Array, v_store: jax.Array, out_map: Callable, interpret: bool,
                 name: str, compiled: bool) -> list[jax.Array]:
    """The append kernel: the new rows are read as (1, D) blocks and written into the aliased cache
    at ``out_map``'s block (of layer ``layer[0]`` when stacked); the rest of the cache is never copied."""
    b, g, d = k_new.shape
    prefetch = with_layer(prefetch, layer)
    n_prefetch = len(prefetch)
    new_spec = pl.BlockSpec((None, None, 1, d), lambda bi, gi, *_: (bi, gi, 0, 0))
    any_spec = pl.BlockSpec(memory_space=pl.ANY)
    out_spec = cache_spec((None, None, 1, d), out_map, stacked=layer is not None)
    return kernel_call(
        functools.partial(_append_kernel, n_prefetch=n_prefetch), compiled=compiled,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=n_prefetch, grid=(b, g), in_specs=[new_spec, new_spec, any_spec, any_spec],
            out_specs=[out_spec, out_spec]),
        out_shape=[jax.ShapeDtypeStruct(k_store.shape, k_store.dtype)] * 2,
        input_output_aliases={n_prefetch + 2: 0, n_prefetch + 3: 1},
        interpret=interpret,
        name=name,
    )(*prefetch, k_new.reshape(b, g, 1, d), v_new.reshape(b, g, 1, d), k_store, v_store)


@functools.partial(jax.jit, static_argnames=("interpret", "compiled"))
def _append_contiguous(k_new, v_new, k_cache, v_cache, lengths, layer, *, interpret, compiled):
    return _append_call([lengths.astype(jnp.int32)], layer, k_new, v_new, k_cache, v_cache,
                        lambda bi, gi, lens: (bi, gi, lens[bi] - 1, 0), interpret, "accelsim_kv_append", compiled)


@functools.partial(jax.jit, static_argnames=("interpret", "compiled"))
def _append_paged(k_new, v_new, k_pages, v_pages, page_table, lengths, layer, *, interpret, compiled):
    page_size = k_pages.shape[-2]
    max_pages = page_table.shape[1]

    def out_map(bi, gi, lens, table):
        pos = jnp.maximum(lens[bi] - 1, 0)
        return (table[bi * max_pages + lax.div(pos, page_size)], gi, lax.rem(pos, page_size), 0)

    prefetch = [lengths.astype(jnp.int32), page_table.astype(jnp.int32).reshape(-1)]
    return _append_call(prefetch, layer, k_new, v_new, k_pages, v_pages, out_map, interpret,
                        "accelsim_paged_kv_append", compiled)


def _stand_in_query(b: int, g: int, d: int, cache_array: jax.Array) -> np.ndarray:
    """The cache checks need a query: one head per kv head, in the cache's dtype (bf16 for a cache stored
    in fp8, which is attended in a wider dtype)."""
    dtype = jnp.bfloat16 if jnp.dtype(cache_array.dtype).itemsize == 1 else cache_array.dtype
    return np.zeros((b, g, d), dtype)


def append_kv(k_new: jax.Array, v_new: jax.Array, cache: KVCache | PagedKVCache, lengths: jax.Array, *,
              layer: jax.Array | int | None = None, interpret: bool | None = None) -> KVCache | PagedKVCache:
    """Write k_new, v_new (B, G, D) at position lengths[b] - 1 of each sequence; returns the new cache.

    ``layer``: the cache is stacked over layers (a leading L axis) and only that layer is written.
    The cache is not donated here: jit the caller with donation (or carry it through a scan) to
    update it in place."""
    lengths = jnp.asarray(lengths)
    form = kernel_form(interpret)
    gpu, compiled = form == "gpu", form == "compiled"
    interpret = scalar_prefetch_interpret(interpret)
    check_dims("k_new", k_new, 3)
    b, g, d = k_new.shape
    if isinstance(cache, PagedKVCache):
        cache = cache._replace(page_table=jnp.asarray(cache.page_table))
        page_size = cache.k_pages.shape[-2]
        check_paged(_stand_in_query(b, g, d, cache.k_pages), cache.k_pages, cache.v_pages, cache.page_table,
                    lengths, page_size, layer)
        check_new(k_new, v_new, b, g, d, cache.k_pages.dtype)
        if gpu:
            k, v = append_gpu(k_new, v_new, cache.k_pages, cache.v_pages, lengths, cache.page_table,
                              layer_operand(layer))
        else:
            k, v = _append_paged(k_new, v_new, cache.k_pages, cache.v_pages, cache.page_table, lengths,
                                 layer_operand(layer), interpret=interpret, compiled=compiled)
        return PagedKVCache(k, v, cache.page_table)
    if not isinstance(cache, KVCache):
        raise AccelsimError(f"decode: cache must be a KVCache or PagedKVCache, got {type(cache).__name__}")
    check_contiguous(_stand_in_query(b, g, d, cache.k), cache.k, cache.v, lengths, 1, layer)
    check_new(k_new, v_new, b, g, d, cache.k.dtype)
    if gpu:
        k, v = append_gpu(k_new, v_new, cache.k, cache.v, lengths, None, layer_operand(layer))
    else:
        k, v = _append_contiguous(k_new, v_new, cache.k, cache.v, lengths, layer_operand(layer), interpret=interpret,
                                  compiled=compiled)
    return KVCache(k, v)
