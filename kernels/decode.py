"""Decode attention over a KV cache: one new query token per sequence, ragged lengths, GQA.

One decode step is two Pallas calls (``decode_step``):
  1. append (``kernels.kv_append``): write the new token's k and v into the cache at position
     ``lengths[b] - 1`` (``input_output_aliases``: the cache goes in untouched, memory space ANY,
     and only a (1, 1, 1, D) output block per (b, kv head) is written back);
  2. attention of q over cache positions [0, lengths[b]) (this module).
``lengths`` (int32, (B,)) is the number of valid cache positions AFTER the append, so >= 1.
Query head h uses kv head h // group, group = H // G. Scores scale 1/sqrt(D), softmax in f32,
output in q's dtype.

Caches (``kernels.kv_cache``)
----------------------------
contiguous  ``KVCache(k, v)``: k, v (B, G, L_max, D).
paged       ``PagedKVCache(k_pages, v_pages, page_table)``: pages (P, G, page_size, D) and
            page_table int32 (B, max_pages); position t of sequence b lives in page
            ``page_table[b, t // page_size]`` at offset ``t % page_size``.
stacked     with ``layer=i``, the caches carry a leading layer axis (L, ...) and the kernels read and
            write layer i only: i is one more scalar-prefetch operand (int32 (1,), the last one),
            and every cache block index below gains a leading ``layer[0]``. Bytes are unchanged.
The attention block is ``block_kv`` positions; for paged caches ``block_kv = m * page_size``
(m >= 1 pages per grid step, fed by m separate BlockSpecs of one page each).

Kernels (all grids row-major, last axis fastest; scalar prefetch via PrefetchScalarGridSpec)
-------------------------------------------------------------------------------------------
q (B, H, D) is viewed as (B, G, group, D); its block (-, -, group, D) (- = squeezed) at
(b, g, 0, 0); the output (B, H, D) uses the same block.
Contiguous attention: grid (B, G, nkv), nkv = cdiv(L_max, block_kv); prefetch: lengths.
  k, v block (-, -, block_kv, D) at (b, g, min(j, last_b), 0), last_b = (lengths[b] - 1) // block_kv.
Paged attention: grid (B, G, nblk), nblk = cdiv(max_pages, m); prefetch: lengths and the page
  table flattened to (B * max_pages,). Spec p in [0, m) of k (and of v): block (-, -, page_size, D)
  at (page_table[b, slot_p(b, j)], g, 0, 0), with lp_b = (lengths[b] - 1) // page_size and
      slot_p(b, j) = min(j, (lp_b - p) // m) * m + p   if p <= lp_b   (clamped to the last valid
                   = lp_b                              otherwise       slot of its own residue)
  so a spec stops being re-copied once it has passed the sequence's last page.
Steps past a sequence's last block do nothing (``pl.when``) and copy nothing (clamped index).
Positions >= lengths[b] get score -inf and their V rows are zeroed (pad is NaN in interpret mode).
Append: see ``kernels.kv_append``.
GPU targets run the Triton forms instead (``kernels.decode_gpu``): no scalar prefetch, the kv loop
inside the program.

HBM <-> VMEM bytes (exact; what ``decode_hbm_bytes`` computes), s = itemsize
---------------------------------------------------------------------------
A block is copied iff its index differs from the previous grid step's; copies are clipped to the
array bounds. Per decode step:
  append:     reads k_new + v_new = 2 * B * G * D * s; writes 2 * B * G * D * s into the cache.
  attention:  q read = B * H * D * s; out written = B * H * D * s;
    contiguous: K read = V read = G * D * s * sum_b min(ceil(lengths[b] / block_kv) * block_kv, L_max)
    paged:      K read = V read = G * page_size * D * s * sum_b max(ceil(lengths[b] / page_size), m)
                (whole pages; the max(., m) is the m - n_pages specs that have no valid page in a
                sequence shorter than one block: they still copy one page each.)
                This assumes no physical page is visited at two consecutive grid steps by the same
                spec, which holds unless G == 1 and two sequences share a page.
  Scalar prefetch (to SMEM, not counted above): lengths 4 * B bytes per call, page table
  4 * B * max_pages bytes per call, layer index 4 bytes per call (append and attention each).
The counts depend on the VALUES of lengths (and, for paged, the page table), not only on shapes.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from accelsim.errors import AccelsimError
from kernels.attention import online_softmax_update
from kernels.backend import kernel_form
from kernels.grid_exec import kernel_call
from kernels.decode_checks import check_contiguous, check_new, check_paged, check_splits
from kernels.decode_gpu import contiguous_attention_gpu, paged_attention_gpu
from kernels.kv_append import append_kv
from kernels.kv_cache import (KVCache, PagedKVCache, cache_spec, gather_pages, layer_operand,
                              scalar_prefetch_interpret, with_layer)

__all__ = ["KVCache", "PagedKVCache", "append_kv", "decode_attention", "decode_hbm_bytes", "decode_reference",
           "decode_step", "decode_step_reference", "gather_pages", "paged_decode_attention"]

_NEG_INIT = float(np.finfo(np.float32).min)


# ---------------------------------------------------------------------------------------------
# Byte formula

def decode_hbm_bytes(*, lengths, heads: int, kv_heads: int, head_dim: int, itemsize: int,
                     block_kv: int, cache_len: int | None = None, page_size: int | None = None,
                     ) -> dict[str, int]:
    """Exact HBM<->VMEM bytes of one ``decode_step`` (formulas in the module docstring).

    Give ``cache_len`` (L_max) for a contiguous cache or ``page_size`` for a paged one."""
    lens = [int(x) for x in np.asarray(lengths).reshape(-1)]
    b, g, d, s = len(lens), kv_heads, head_dim, itemsize
    if page_size is None:
        rows = sum(min(pl.cdiv(n, block_kv) * block_kv, cache_len) for n in lens)
    else:
        m = block_kv // page_size
        rows = page_size * sum(max(pl.cdiv(n, page_size), m) for n in lens)
    kv = g * rows * d * s
    qo = b * heads * d * s
    new = b * g * d * s
    return {"append_read": 2 * new, "append_write": 2 * new,
            "q": qo, "k": kv, "v": kv, "o": qo,
            "attention_total": 2 * qo + 2 * kv, "total": 4 * new + 2 * qo + 2 * kv}


# ---------------------------------------------------------------------------------------------
# Attention kernels. Prefetch operands: lengths first, the page table next (paged), the layer
# index last (stacked caches); q, output and partial-state index maps ignore all but lengths.

def _decode_update(q, k, v, m_prev, l_prev, acc_prev, *, kv_start, length, scale):
    """q (group, D), k/v (block, D), widened to q's dtype if stored narrower (an fp8 cache);
    positions >= length masked; f32 online-softmax state."""
    k, v = k.astype(q.dtype), v.astype(q.dtype)
    bkv = k.shape[0]
    pos = kv_start + lax.broadcasted_iota(jnp.int32, (1, bkv), 1)
    v_pos = kv_start + lax.broadcasted_iota(jnp.int32, (bkv, 1), 0)
    precision = lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
    return online_softmax_update(q, k, v, m_prev, l_prev, acc_prev, valid=pos < length, v_valid=v_pos < length,
                                 scale=scale, precision=precision)


def _init_state(m_sc, l_sc, acc_sc):
    m_sc[...] = jnp.full_like(m_sc, _NEG_INIT)
    l_sc[...] = jnp.zeros_like(l_sc)
    acc_sc[...] = jnp.zeros_like(acc_sc)


def _decode_kernel(*refs, n_prefetch, m_specs, block_kv, scale, nblk):
    lens_ref = refs[0]
    q_ref = refs[n_prefetch]
    k_refs = refs[n_prefetch + 1:n_prefetch + 1 + m_specs]
    v_refs = refs[n_prefetch + 1 + m_specs:n_prefetch + 1 + 2 * m_specs]
    o_ref, m_sc, l_sc, acc_sc = refs[n_prefetch + 1 + 2 * m_specs:]
    b, j = pl.program_id(0), pl.program_id(2)
    length = lens_ref[b]

    @pl.when(j == 0)
    def _init():
        _init_state(m_sc, l_sc, acc_sc)

    @pl.when(j * block_kv < length)
    def _compute():
        cat = (lambda rs: rs[0][...]) if m_specs == 1 else (
            lambda rs: jnp.concatenate([r[...] for r in rs], axis=0))
        m, l, acc = _decode_update(q_ref[...], cat(k_refs), cat(v_refs), m_sc[...], l_sc[...],
                                   acc_sc[...], kv_start=j * block_kv, length=length, scale=scale)
        m_sc[...], l_sc[...], acc_sc[...] = m, l, acc

    @pl.when(j == nblk - 1)
    def _store():
        l = l_sc[...]
        o_ref[...] = (acc_sc[...] / jnp.where(l == 0, 1.0, l)).astype(o_ref.dtype)


def _scratch(group, d):
    return [pltpu.VMEM((group, 1), jnp.float32), pltpu.VMEM((group, 1), jnp.float32),
            pltpu.VMEM((group, d), jnp.float32)]


def _q_spec(group, d):
    """q and output: block (-, -, group, D) at (b, g, 0, 0) on any grid whose first two axes are (b, g)."""
    return pl.BlockSpec((None, None, group, d), lambda bi, gi, *_: (bi, gi, 0, 0))


@functools.partial(jax.jit, static_argnames=("block_kv", "interpret", "compiled"))
def _contiguous_attention(q, k_cache, v_cache, lengths, layer, *, block_kv, interpret, compiled):
    (b, h, d), (g, l_max) = q.shape, k_cache.shape[-3:-1]
    group = h // g
    nkv = pl.cdiv(l_max, block_kv)
    prefetch = with_layer([lengths.astype(jnp.int32)], layer)

    def kv_map(bi, gi, j, lens):
        return (bi, gi, jnp.minimum(j, lax.div(jnp.maximum(lens[bi] - 1, 0), block_kv)), 0)

    kv_spec = cache_spec((None, None, block_kv, d), kv_map, stacked=layer is not None)
    out = kernel_call(
        functools.partial(_decode_kernel, n_prefetch=len(prefetch), m_specs=1, block_kv=block_kv,
                          scale=1.0 / math.sqrt(d), nblk=nkv), compiled=compiled,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=len(prefetch), grid=(b, g, nkv), in_specs=[_q_spec(group, d), kv_spec, kv_spec],
            out_specs=_q_spec(group, d), scratch_shapes=_scratch(group, d)),
        out_shape=jax.ShapeDtypeStruct((b, g, group, d), q.dtype),
        interpret=interpret,
        name="accelsim_decode_attention",
    )(*prefetch, q.reshape(b, g, group, d), k_cache, v_cache)
    return out.reshape(b, h, d)


def _split_decode_kernel(*refs, n_prefetch, block_kv, scale, per_split):
    """One split of the KV sequence: blocks s*per_split .. s*per_split + per_split - 1; partial state out."""
    lens_ref = refs[0]
    q_ref, k_ref, v_ref, acc_ref, ml_ref, m_sc, l_sc, acc_sc = refs[n_prefetch:]
    b, s, j = pl.program_id(0), pl.program_id(2), pl.program_id(3)
    length = lens_ref[b]
    start = (s * per_split + j) * block_kv

    @pl.when(j == 0)
    def _init():
        _init_state(m_sc, l_sc, acc_sc)

    @pl.when(start < length)
    def _compute():
        m, l, acc = _decode_update(q_ref[...], k_ref[...], v_ref[...], m_sc[...], l_sc[...], acc_sc[...],
                                   kv_start=start, length=length, scale=scale)
        m_sc[...], l_sc[...], acc_sc[...] = m, l, acc

    @pl.when(j == per_split - 1)
    def _store():
        acc_ref[...] = acc_sc[...]
        ml_ref[...] = jnp.concatenate([m_sc[...], l_sc[...]], axis=1)


def _combine_kernel(acc_ref, ml_ref, o_ref):
    """Merge the splits' partial softmax states: rescale each by exp(m_s - max m), then normalise."""
    ml = ml_ref[...]
    m, l = ml[:, :, 0:1], ml[:, :, 1:2]
    weight = jnp.exp(m - jnp.max(m, axis=0, keepdims=True))
    total = jnp.sum(weight * l, axis=0)
    out = jnp.sum(weight * acc_ref[...], axis=0) / jnp.where(total == 0, 1.0, total)
    o_ref[...] = out.astype(o_ref.dtype)


@functools.partial(jax.jit, static_argnames=("block_kv", "splits", "interpret", "compiled"))
def _split_attention(q, k_cache, v_cache, lengths, layer, *, block_kv, splits, interpret, compiled):
    """Flash-decoding: the KV sequence is cut into ``splits`` ranges computed in parallel (grid
    (B, G, splits, per_split)), then a combine kernel (grid (B, G)) merges their partial states."""
    (b, h, d), (g, l_max) = q.shape, k_cache.shape[-3:-1]
    group = h // g
    per_split = pl.cdiv(pl.cdiv(l_max, block_kv), splits)
    prefetch = with_layer([lengths.astype(jnp.int32)], layer)

    def kv_map(bi, gi, si, j, lens):
        last = lax.div(jnp.maximum(lens[bi] - 1, 0), block_kv)
        return (bi, gi, jnp.minimum(si * per_split + j, last), 0)

    kv_spec = cache_spec((None, None, block_kv, d), kv_map, stacked=layer is not None)
    acc_spec = pl.BlockSpec((None, None, None, group, d), lambda bi, gi, si, j, *_: (bi, gi, si, 0, 0))
    ml_spec = pl.BlockSpec((None, None, None, group, 2), lambda bi, gi, si, j, *_: (bi, gi, si, 0, 0))
    acc, ml = kernel_call(
        functools.partial(_split_decode_kernel, n_prefetch=len(prefetch), block_kv=block_kv,
                          scale=1.0 / math.sqrt(d), per_split=per_split), compiled=compiled,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=len(prefetch), grid=(b, g, splits, per_split),
            in_specs=[_q_spec(group, d), kv_spec, kv_spec],
            out_specs=[acc_spec, ml_spec], scratch_shapes=_scratch(group, d)),
        out_shape=[jax.ShapeDtypeStruct((b, g, splits, group, d), jnp.float32),
                   jax.ShapeDtypeStruct((b, g, splits, group, 2), jnp.float32)],
        interpret=interpret,
        name="accelsim_decode_attention_split",
    )(*prefetch, q.reshape(b, g, group, d), k_cache, v_cache)
    out = kernel_call(
        _combine_kernel, compiled=compiled, grid=(b, g),
        in_specs=[pl.BlockSpec((None, None, splits, group, d), lambda bi, gi: (bi, gi, 0, 0, 0)),
                  pl.BlockSpec((None, None, splits, group, 2), lambda bi, gi: (bi, gi, 0, 0, 0))],
        out_specs=pl.BlockSpec((None, None, group, d), lambda bi, gi: (bi, gi, 0, 0)),
        out_shape=jax.ShapeDtypeStruct((b, g, group, d), q.dtype),
        interpret=interpret,
        name="accelsim_decode_combine",
    )(acc, ml)
    return out.reshape(b, h, d)


@functools.partial(jax.jit, static_argnames=("block_kv", "interpret", "compiled"))
def _paged_attention(q, k_pages, v_pages, page_table, lengths, layer, *, block_kv, interpret, compiled):
    (b, h, d), (g, page_size) = q.shape, k_pages.shape[-3:-1]
    group = h // g
    max_pages = page_table.shape[1]
    m = block_kv // page_size
    nblk = pl.cdiv(max_pages, m)
    prefetch = with_layer([lengths.astype(jnp.int32), page_table.astype(jnp.int32).reshape(-1)], layer)

    def page_map(p):
        def index(bi, gi, j, lens, table):
            lp = lax.div(jnp.maximum(lens[bi] - 1, 0), page_size)
            slot = jnp.where(lp >= p, jnp.minimum(j, lax.div(jnp.maximum(lp - p, 0), m)) * m + p, lp)
            return (table[bi * max_pages + slot], gi, 0, 0)
        return cache_spec((None, None, page_size, d), index, stacked=layer is not None)

    page_specs = [page_map(p) for p in range(m)]
    out = kernel_call(
        functools.partial(_decode_kernel, n_prefetch=len(prefetch), m_specs=m, block_kv=block_kv,
                          scale=1.0 / math.sqrt(d), nblk=nblk), compiled=compiled,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=len(prefetch), grid=(b, g, nblk),
            in_specs=[_q_spec(group, d), *page_specs, *page_specs],
            out_specs=_q_spec(group, d), scratch_shapes=_scratch(group, d)),
        out_shape=jax.ShapeDtypeStruct((b, g, group, d), q.dtype),
        interpret=interpret,
        name="accelsim_paged_decode_attention",
    )(*prefetch, q.reshape(b, g, group, d), *([k_pages] * m), *([v_pages] * m))
    return out.reshape(b, h, d)


# ---------------------------------------------------------------------------------------------
# Public entry points

def _attend_contiguous(q, k_cache, v_cache, lengths, layer, block_kv, splits, interpret):
    check_splits(splits)
    form = kernel_form(interpret)
    if form == "gpu":
        return contiguous_attention_gpu(q, k_cache, v_cache, lengths, layer, block_kv=block_kv, splits=splits)
    interpret, compiled = scalar_prefetch_interpret(interpret), form == "compiled"
    if splits == 1:
        return _contiguous_attention(q, k_cache, v_cache, lengths, layer, block_kv=block_kv, interpret=interpret,
                                     compiled=compiled)
    return _split_attention(q, k_cache, v_cache, lengths, layer, block_kv=block_kv, splits=splits,
                            interpret=interpret, compiled=compiled)


def _attend_paged(q, k_pages, v_pages, page_table, lengths, layer, block_kv, interpret):
    form = kernel_form(interpret)
    if form == "gpu":
        return paged_attention_gpu(q, k_pages, v_pages, page_table, lengths, layer)
    return _paged_attention(q, k_pages, v_pages, page_table, lengths, layer, block_kv=block_kv,
                            interpret=scalar_prefetch_interpret(interpret), compiled=form == "compiled")


def decode_attention(q: jax.Array, k_cache: jax.Array, v_cache: jax.Array, lengths: jax.Array, *, block_kv: int,
                     splits: int = 1, layer: jax.Array | int | None = None,
                     interpret: bool | None = None) -> jax.Array:
    """Attention of q (B, H, D) over the first lengths[b] positions of k/v_cache (B, G, L_max, D).

    ``layer``: the caches are stacked (L, B, G, L_max, D) and layer ``layer`` is read.
    ``splits`` > 1 cuts each sequence's blocks into that many ranges computed in parallel (flash-decoding)."""
    lengths = jnp.asarray(lengths)
    check_contiguous(q, k_cache, v_cache, lengths, block_kv, layer)
    return _attend_contiguous(q, k_cache, v_cache, lengths, layer_operand(layer), block_kv, splits, interpret)


def paged_decode_attention(q: jax.Array, k_pages: jax.Array, v_pages: jax.Array, page_table: jax.Array,
                           lengths: jax.Array, *, block_kv: int, layer: jax.Array | int | None = None,
                           interpret: bool | None = None) -> jax.Array:
    """Attention of q (B, H, D) over the first lengths[b] positions of a paged cache (of layer ``layer``
    when the pages are stacked (L, P, G, page_size, D))."""
    lengths, page_table = jnp.asarray(lengths), jnp.asarray(page_table)
    check_paged(q, k_pages, v_pages, page_table, lengths, block_kv, layer)
    return _attend_paged(q, k_pages, v_pages, page_table, lengths, layer_operand(layer), block_kv, interpret)


def decode_step(q: jax.Array, k_new: jax.Array, v_new: jax.Array, cache: KVCache | PagedKVCache,
                lengths: jax.Array, *, block_kv: int, splits: int = 1, layer: jax.Array | int | None = None,
                interpret: bool | None = None) -> tuple[jax.Array, KVCache | PagedKVCache]:
    """One decode step: append (k_new, v_new) at lengths-1, then attend over lengths positions.

    q (B, H, D); k_new, v_new (B, G, D); cache a ``KVCache`` or ``PagedKVCache``;
    lengths int32 (B,) = valid positions after the append. Returns (out (B, H, D), new cache).
    ``layer``: the cache is stacked over layers and only that layer is written and read (a layer
    scan carries the stacked cache, so it is updated in place).
    ``splits`` (contiguous caches): flash-decoding over that many KV ranges."""
    lengths = jnp.asarray(lengths)
    if isinstance(cache, PagedKVCache):
        if splits != 1:
            raise AccelsimError("decode: splits > 1 is implemented for contiguous caches only")
        cache = cache._replace(page_table=jnp.asarray(cache.page_table))
        b, h, g, d, _, _ = check_paged(q, cache.k_pages, cache.v_pages, cache.page_table, lengths, block_kv, layer)
        check_new(k_new, v_new, b, g, d, cache.k_pages.dtype)
        cache = append_kv(k_new, v_new, cache, lengths, layer=layer, interpret=interpret)
        out = _attend_paged(q, cache.k_pages, cache.v_pages, cache.page_table, lengths, layer_operand(layer),
                            block_kv, interpret)
        return out, cache
    if not isinstance(cache, KVCache):
        raise AccelsimError(f"decode: cache must be a KVCache or PagedKVCache, got {type(cache).__name__}")
    b, h, g, d = check_contiguous(q, cache.k, cache.v, lengths, block_kv, layer)
    check_new(k_new, v_new, b, g, d, cache.k.dtype)
    cache = append_kv(k_new, v_new, cache, lengths, layer=layer, interpret=interpret)
    return _attend_contiguous(q, cache.k, cache.v, lengths, layer_operand(layer), block_kv, splits,
                              interpret), cache


from kernels.decode_reference import decode_reference, decode_step_reference  # noqa: E402,F401 (re-exported)
