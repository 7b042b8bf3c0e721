"""Decode attention over a KV cache: one new query token per sequence, ragged lengths, GQA.

One decode step is two Pallas calls (``decode_step``):
  1. append: write the new token's k and v into the cache at position ``lengths[b] - 1``
     (``input_output_aliases``: the cache goes in untouched, memory space ANY, and only a
     (1, 1, 1, D) output block per (b, kv head) is written back);
  2. attention of q over cache positions [0, lengths[b]).
``lengths`` (int32, (B,)) is the number of valid cache positions AFTER the append, so >= 1.
Query head h uses kv head h // group, group = H // G. Scores scale 1/sqrt(D), softmax in f32,
output in q's dtype.

Caches
------
contiguous  ``KVCache(k, v)``: k, v (B, G, L_max, D).
paged       ``PagedKVCache(k_pages, v_pages, page_table)``: pages (P, G, page_size, D) and
            page_table int32 (B, max_pages); position t of sequence b lives in page
            ``page_table[b, t // page_size]`` at offset ``t % page_size``.
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
Append: grid (B, G); prefetch: lengths (and the flattened page table for paged).
  k_new, v_new (B, G, D) viewed (B, G, 1, D), block (-, -, 1, D) at (b, g, 0, 0) (read);
  cache outputs aliased to the cache inputs, block (-, -, 1, D) at
      contiguous: (b, g, lengths[b] - 1, 0)
      paged:      (page_table[b, (lengths[b]-1) // page_size], g, (lengths[b]-1) % page_size, 0).

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
  4 * B * max_pages bytes per call (append and attention each).
The counts depend on the VALUES of lengths (and, for paged, the page table), not only on shapes.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from accelsim.errors import AccelsimError
from kernels.attention import online_softmax_update

_NEG_INIT = float(np.finfo(np.float32).min)
_FLOAT_DTYPES = ("float32", "bfloat16", "float16")


class KVCache(NamedTuple):
    """Contiguous cache: k, v (B, G, L_max, D)."""
    k: jax.Array
    v: jax.Array


class PagedKVCache(NamedTuple):
    """Paged cache: k_pages, v_pages (num_pages, G, page_size, D); page_table int32 (B, max_pages)."""
    k_pages: jax.Array
    v_pages: jax.Array
    page_table: jax.Array


def _default_interpret(interpret):
    # The kernels use TPU scalar prefetch, which only Mosaic lowers: interpret everywhere else.
    return (jax.default_backend() != "tpu") if interpret is None else interpret


def _concrete(x):
    """x as a numpy array when its values are known (not under jit), else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


# ---------------------------------------------------------------------------------------------
# Validation (one-line AccelsimError messages)

def _check_dims(name, x, ndim):
    if x.ndim != ndim:
        raise AccelsimError(f"decode: {name} must be {ndim}-D, got shape {tuple(x.shape)}")
    if any(d <= 0 for d in x.shape):
        raise AccelsimError(f"decode: {name} has a non-positive dimension: shape {tuple(x.shape)}")


def _check_float(name, x):
    if jnp.dtype(x.dtype).name not in _FLOAT_DTYPES:
        raise AccelsimError(f"decode: {name} dtype {x.dtype} is not executable: use float32 or bfloat16")


def _check_block(block_kv):
    if not isinstance(block_kv, (int, np.integer)) or isinstance(block_kv, bool) or block_kv <= 0:
        raise AccelsimError(f"decode: block_kv must be a positive integer, got {block_kv!r}")


def _check_q_kv(q, k, v):
    """q (B, H, D) against k, v (X, G, S, D); returns (B, H, G, D)."""
    _check_dims("q", q, 3)
    _check_dims("k cache", k, 4)
    _check_dims("v cache", v, 4)
    if k.shape != v.shape:
        raise AccelsimError(f"decode: k and v caches differ in shape: {tuple(k.shape)} vs {tuple(v.shape)}")
    for name, x in (("q", q), ("k cache", k), ("v cache", v)):
        _check_float(name, x)
    if not (q.dtype == k.dtype == v.dtype):
        raise AccelsimError(f"decode: q and cache dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    (b, h, d), g = q.shape, k.shape[1]
    if k.shape[3] != d:
        raise AccelsimError(f"decode: head_dim of q ({d}) and the cache ({k.shape[3]}) differ")
    if h % g:
        raise AccelsimError(f"decode: {g} kv heads do not divide {h} query heads")
    return b, h, g, d


def _check_lengths(lengths, batch, capacity, what):
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


def _check_paged(q, k_pages, v_pages, page_table, lengths, block_kv):
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


def _check_contiguous(q, k_cache, v_cache, lengths, block_kv):
    b, h, g, d = _check_q_kv(q, k_cache, v_cache)
    _check_block(block_kv)
    if k_cache.shape[0] != b:
        raise AccelsimError(f"decode: batch of q ({b}) and the cache ({k_cache.shape[0]}) differ")
    _check_lengths(lengths, b, k_cache.shape[2], "the cache")
    return b, h, g, d


def _check_new(k_new, v_new, b, g, d, dtype):
    for name, x in (("k_new", k_new), ("v_new", v_new)):
        _check_dims(name, x, 3)
        if x.shape != (b, g, d):
            raise AccelsimError(f"decode: {name} must have shape {(b, g, d)}, got {tuple(x.shape)}")
        if x.dtype != dtype:
            raise AccelsimError(f"decode: {name} dtype {x.dtype} differs from the cache's {dtype}")


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
# Attention kernels

def _decode_update(q, k, v, m_prev, l_prev, acc_prev, *, kv_start, length, scale):
    """q (group, D), k/v (block, D); positions >= length masked; f32 online-softmax state."""
    bkv = k.shape[0]
    pos = kv_start + lax.broadcasted_iota(jnp.int32, (1, bkv), 1)
    v_pos = kv_start + lax.broadcasted_iota(jnp.int32, (bkv, 1), 0)
    precision = lax.Precision.HIGHEST if q.dtype == jnp.float32 else None
    return online_softmax_update(q, k, v, m_prev, l_prev, acc_prev, valid=pos < length, v_valid=v_pos < length,
                                 scale=scale, precision=precision)


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
        m_sc[...] = jnp.full_like(m_sc, _NEG_INIT)
        l_sc[...] = jnp.zeros_like(l_sc)
        acc_sc[...] = jnp.zeros_like(acc_sc)

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


@functools.partial(jax.jit, static_argnames=("block_kv", "interpret"))
def _contiguous_attention(q, k_cache, v_cache, lengths, *, block_kv, interpret):
    (b, h, d), (_, g, l_max, _) = q.shape, k_cache.shape
    group = h // g
    nkv = pl.cdiv(l_max, block_kv)

    def kv_map(bi, gi, j, lens):
        return (bi, gi, jnp.minimum(j, lax.div(jnp.maximum(lens[bi] - 1, 0), block_kv)), 0)

    q_spec = pl.BlockSpec((None, None, group, d), lambda bi, gi, j, lens: (bi, gi, 0, 0))
    kv_spec = pl.BlockSpec((None, None, block_kv, d), kv_map)
    out = pl.pallas_call(
        functools.partial(_decode_kernel, n_prefetch=1, m_specs=1, block_kv=block_kv,
                          scale=1.0 / math.sqrt(d), nblk=nkv),
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=1, grid=(b, g, nkv), in_specs=[q_spec, kv_spec, kv_spec],
            out_specs=q_spec, scratch_shapes=_scratch(group, d)),
        out_shape=jax.ShapeDtypeStruct((b, g, group, d), q.dtype),
        interpret=interpret,
        name="accelsim_decode_attention",
    )(lengths.astype(jnp.int32), q.reshape(b, g, group, d), k_cache, v_cache)
    return out.reshape(b, h, d)


def _split_decode_kernel(lens_ref, q_ref, k_ref, v_ref, acc_ref, ml_ref, m_sc, l_sc, acc_sc, *, block_kv, scale,
                         per_split):
    """One split of the KV sequence: blocks s*per_split .. s*per_split + per_split - 1; partial state out."""
    b, s, j = pl.program_id(0), pl.program_id(2), pl.program_id(3)
    length = lens_ref[b]
    start = (s * per_split + j) * block_kv

    @pl.when(j == 0)
    def _init():
        m_sc[...] = jnp.full_like(m_sc, _NEG_INIT)
        l_sc[...] = jnp.zeros_like(l_sc)
        acc_sc[...] = jnp.zeros_like(acc_sc)

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


@functools.partial(jax.jit, static_argnames=("block_kv", "splits", "interpret"))
def _split_attention(q, k_cache, v_cache, lengths, *, block_kv, splits, interpret):
    """Flash-decoding: the KV sequence is cut into ``splits`` ranges computed in parallel (grid
    (B, G, splits, per_split)), then a combine kernel (grid (B, G)) merges their partial states."""
    (b, h, d), (_, g, l_max, _) = q.shape, k_cache.shape
    group = h // g
    per_split = pl.cdiv(pl.cdiv(l_max, block_kv), splits)

    def kv_map(bi, gi, si, j, lens):
        last = lax.div(jnp.maximum(lens[bi] - 1, 0), block_kv)
        return (bi, gi, jnp.minimum(si * per_split + j, last), 0)

    q_spec = pl.BlockSpec((None, None, group, d), lambda bi, gi, si, j, lens: (bi, gi, 0, 0))
    kv_spec = pl.BlockSpec((None, None, block_kv, d), kv_map)
    acc_spec = pl.BlockSpec((None, None, None, group, d), lambda bi, gi, si, j, lens: (bi, gi, si, 0, 0))
    ml_spec = pl.BlockSpec((None, None, None, group, 2), lambda bi, gi, si, j, lens: (bi, gi, si, 0, 0))
    acc, ml = pl.pallas_call(
        functools.partial(_split_decode_kernel, block_kv=block_kv, scale=1.0 / math.sqrt(d), per_split=per_split),
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=1, grid=(b, g, splits, per_split), in_specs=[q_spec, kv_spec, kv_spec],
            out_specs=[acc_spec, ml_spec], scratch_shapes=_scratch(group, d)),
        out_shape=[jax.ShapeDtypeStruct((b, g, splits, group, d), jnp.float32),
                   jax.ShapeDtypeStruct((b, g, splits, group, 2), jnp.float32)],
        interpret=interpret,
        name="accelsim_decode_attention_split",
    )(lengths.astype(jnp.int32), q.reshape(b, g, group, d), k_cache, v_cache)
    out = pl.pallas_call(
        _combine_kernel, grid=(b, g),
        in_specs=[pl.BlockSpec((None, None, splits, group, d), lambda bi, gi: (bi, gi, 0, 0, 0)),
                  pl.BlockSpec((None, None, splits, group, 2), lambda bi, gi: (bi, gi, 0, 0, 0))],
        out_specs=pl.BlockSpec((None, None, group, d), lambda bi, gi: (bi, gi, 0, 0)),
        out_shape=jax.ShapeDtypeStruct((b, g, group, d), q.dtype),
        interpret=interpret,
        name="accelsim_decode_combine",
    )(acc, ml)
    return out.reshape(b, h, d)


@functools.partial(jax.jit, static_argnames=("block_kv", "interpret"))
def _paged_attention(q, k_pages, v_pages, page_table, lengths, *, block_kv, interpret):
    (b, h, d), (_, g, page_size, _) = q.shape, k_pages.shape
    group = h // g
    max_pages = page_table.shape[1]
    m = block_kv // page_size
    nblk = pl.cdiv(max_pages, m)

    def page_map(p):
        def index(bi, gi, j, lens, table):
            lp = lax.div(jnp.maximum(lens[bi] - 1, 0), page_size)
            slot = jnp.where(lp >= p, jnp.minimum(j, lax.div(jnp.maximum(lp - p, 0), m)) * m + p, lp)
            return (table[bi * max_pages + slot], gi, 0, 0)
        return pl.BlockSpec((None, None, page_size, d), index)

    q_spec = pl.BlockSpec((None, None, group, d), lambda bi, gi, j, lens, table: (bi, gi, 0, 0))
    page_specs = [page_map(p) for p in range(m)]
    out = pl.pallas_call(
        functools.partial(_decode_kernel, n_prefetch=2, m_specs=m, block_kv=block_kv,
                          scale=1.0 / math.sqrt(d), nblk=nblk),
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=2, grid=(b, g, nblk), in_specs=[q_spec, *page_specs, *page_specs],
            out_specs=q_spec, scratch_shapes=_scratch(group, d)),
        out_shape=jax.ShapeDtypeStruct((b, g, group, d), q.dtype),
        interpret=interpret,
        name="accelsim_paged_decode_attention",
    )(lengths.astype(jnp.int32), page_table.astype(jnp.int32).reshape(-1),
      q.reshape(b, g, group, d), *([k_pages] * m), *([v_pages] * m))
    return out.reshape(b, h, d)


def decode_attention(q, k_cache, v_cache, lengths, *, block_kv: int, splits: int = 1,
                     interpret: bool | None = None):
    """Attention of q (B, H, D) over the first lengths[b] positions of k/v_cache (B, G, L_max, D).

    ``splits`` > 1 cuts each sequence's blocks into that many ranges computed in parallel (flash-decoding)."""
    lengths = jnp.asarray(lengths)
    _check_contiguous(q, k_cache, v_cache, lengths, block_kv)
    return _attend_contiguous(q, k_cache, v_cache, lengths, block_kv, splits, interpret)


def _attend_contiguous(q, k_cache, v_cache, lengths, block_kv, splits, interpret):
    if not isinstance(splits, int) or splits < 1:
        raise AccelsimError(f"decode: splits must be a positive integer (got {splits!r})")
    interpret = _default_interpret(interpret)
    if splits == 1:
        return _contiguous_attention(q, k_cache, v_cache, lengths, block_kv=block_kv, interpret=interpret)
    return _split_attention(q, k_cache, v_cache, lengths, block_kv=block_kv, splits=splits, interpret=interpret)


def paged_decode_attention(q, k_pages, v_pages, page_table, lengths, *, block_kv: int,
                           interpret: bool | None = None):
    """Attention of q (B, H, D) over the first lengths[b] positions of a paged cache."""
    lengths, page_table = jnp.asarray(lengths), jnp.asarray(page_table)
    _check_paged(q, k_pages, v_pages, page_table, lengths, block_kv)
    return _paged_attention(q, k_pages, v_pages, page_table, lengths, block_kv=block_kv,
                            interpret=_default_interpret(interpret))


# ---------------------------------------------------------------------------------------------
# Append

def _append_kernel(*refs, n_prefetch):
    k_new, v_new = refs[n_prefetch], refs[n_prefetch + 1]
    k_out, v_out = refs[-2], refs[-1]  # refs[n_prefetch + 2: n_prefetch + 4] are the ANY caches
    k_out[...] = k_new[...]
    v_out[...] = v_new[...]


def _append_call(prefetch, k_new, v_new, k_store, v_store, out_map, interpret, name):
    """The append kernel: grid (B, G); the new rows are read as (1, D) blocks and written into the
    aliased cache at ``out_map``'s block; the rest of the cache (memory space ANY) is never copied."""
    b, g, d = k_new.shape
    n_prefetch = len(prefetch)
    new_spec = pl.BlockSpec((None, None, 1, d), lambda bi, gi, *_: (bi, gi, 0, 0))
    any_spec = pl.BlockSpec(memory_space=pl.ANY)
    out_spec = pl.BlockSpec((None, None, 1, d), out_map)
    return pl.pallas_call(
        functools.partial(_append_kernel, n_prefetch=n_prefetch),
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=n_prefetch, grid=(b, g), in_specs=[new_spec, new_spec, any_spec, any_spec],
            out_specs=[out_spec, out_spec]),
        out_shape=[jax.ShapeDtypeStruct(k_store.shape, k_store.dtype)] * 2,
        input_output_aliases={n_prefetch + 2: 0, n_prefetch + 3: 1},
        interpret=interpret,
        name=name,
    )(*prefetch, k_new.reshape(b, g, 1, d), v_new.reshape(b, g, 1, d), k_store, v_store)


@functools.partial(jax.jit, static_argnames=("interpret",))
def _append_contiguous(k_new, v_new, k_cache, v_cache, lengths, *, interpret):
    return _append_call([lengths.astype(jnp.int32)], k_new, v_new, k_cache, v_cache,
                        lambda bi, gi, lens: (bi, gi, lens[bi] - 1, 0), interpret, "accelsim_kv_append")


@functools.partial(jax.jit, static_argnames=("interpret",))
def _append_paged(k_new, v_new, k_pages, v_pages, page_table, lengths, *, interpret):
    page_size = k_pages.shape[2]
    max_pages = page_table.shape[1]

    def out_map(bi, gi, lens, table):
        pos = jnp.maximum(lens[bi] - 1, 0)
        return (table[bi * max_pages + lax.div(pos, page_size)], gi, lax.rem(pos, page_size), 0)

    prefetch = [lengths.astype(jnp.int32), page_table.astype(jnp.int32).reshape(-1)]
    return _append_call(prefetch, k_new, v_new, k_pages, v_pages, out_map, interpret, "accelsim_paged_kv_append")


def append_kv(k_new, v_new, cache, lengths, *, interpret: bool | None = None):
    """Write k_new, v_new (B, G, D) at position lengths[b] - 1 of each sequence; returns the new cache.

    The cache is not donated here: jit the caller with donation to update it in place."""
    lengths = jnp.asarray(lengths)
    interpret = _default_interpret(interpret)
    if isinstance(cache, PagedKVCache):
        cache = cache._replace(page_table=jnp.asarray(cache.page_table))
        _check_dims("k_new", k_new, 3)
        b, g, d = k_new.shape
        # the checks need a query: a stand-in with one head per kv head
        _check_paged(np.zeros((b, g, d), cache.k_pages.dtype), cache.k_pages, cache.v_pages,
                     cache.page_table, lengths, cache.k_pages.shape[2])
        _check_new(k_new, v_new, b, g, d, cache.k_pages.dtype)
        k, v = _append_paged(k_new, v_new, cache.k_pages, cache.v_pages, cache.page_table,
                             lengths, interpret=interpret)
        return PagedKVCache(k, v, cache.page_table)
    if not isinstance(cache, KVCache):
        raise AccelsimError(f"decode: cache must be a KVCache or PagedKVCache, got {type(cache).__name__}")
    _check_dims("k_new", k_new, 3)
    b, g, d = k_new.shape
    _check_contiguous(np.zeros((b, g, d), cache.k.dtype), cache.k, cache.v, lengths, 1)
    _check_new(k_new, v_new, b, g, d, cache.k.dtype)
    k, v = _append_contiguous(k_new, v_new, cache.k, cache.v, lengths, interpret=interpret)
    return KVCache(k, v)


# ---------------------------------------------------------------------------------------------

def decode_step(q, k_new, v_new, cache, lengths, *, block_kv: int, splits: int = 1,
                interpret: bool | None = None):
    """One decode step: append (k_new, v_new) at lengths-1, then attend over lengths positions.

    q (B, H, D); k_new, v_new (B, G, D); cache a ``KVCache`` or ``PagedKVCache``;
    lengths int32 (B,) = valid positions after the append. Returns (out (B, H, D), new cache).
    ``splits`` (contiguous caches): flash-decoding over that many KV ranges."""
    lengths = jnp.asarray(lengths)
    if isinstance(cache, PagedKVCache):
        if splits != 1:
            raise AccelsimError("decode: splits > 1 is implemented for contiguous caches only")
        cache = cache._replace(page_table=jnp.asarray(cache.page_table))
        b, h, g, d, _, _ = _check_paged(q, cache.k_pages, cache.v_pages, cache.page_table,
                                        lengths, block_kv)
        _check_new(k_new, v_new, b, g, d, cache.k_pages.dtype)
        cache = append_kv(k_new, v_new, cache, lengths, interpret=interpret)
        out = _paged_attention(q, cache.k_pages, cache.v_pages, cache.page_table, lengths,
                               block_kv=block_kv, interpret=_default_interpret(interpret))
        return out, cache
    if not isinstance(cache, KVCache):
        raise AccelsimError(f"decode: cache must be a KVCache or PagedKVCache, got {type(cache).__name__}")
    b, h, g, d = _check_contiguous(q, cache.k, cache.v, lengths, block_kv)
    _check_new(k_new, v_new, b, g, d, cache.k.dtype)
    cache = append_kv(k_new, v_new, cache, lengths, interpret=interpret)
    return _attend_contiguous(q, cache.k, cache.v, lengths, block_kv, splits, interpret), cache


# ---------------------------------------------------------------------------------------------
# References (plain jnp)

def gather_pages(pages, page_table):
    """(P, G, page_size, D) pages + (B, max_pages) table -> contiguous (B, G, max_pages * page_size, D)."""
    x = pages[page_table]  # (B, max_pages, G, page_size, D)
    b, mp, g, ps, d = x.shape
    return x.transpose(0, 2, 1, 3, 4).reshape(b, g, mp * ps, d)


def decode_reference(q, k_cache, v_cache, lengths):
    """Plain jnp attention of q (B, H, D) over positions [0, lengths[b]) of (B, G, L, D) caches."""
    (b, h, d), (_, g, l_max, _) = q.shape, k_cache.shape
    group = h // g
    qf = q.astype(jnp.float32).reshape(b, g, group, d)
    s = jnp.einsum("bgrd,bgld->bgrl", qf, k_cache.astype(jnp.float32),
                   precision=lax.Precision.HIGHEST) / math.sqrt(d)
    valid = jnp.arange(l_max)[None, :] < jnp.asarray(lengths)[:, None]
    s = jnp.where(valid[:, None, None, :], s, -jnp.inf)
    p = jax.nn.softmax(s, axis=-1)
    v = jnp.where(valid[:, None, :, None], v_cache.astype(jnp.float32), 0.0)
    out = jnp.einsum("bgrl,bgld->bgrd", p, v, precision=lax.Precision.HIGHEST)
    return out.reshape(b, h, d).astype(q.dtype)


def decode_step_reference(q, k_new, v_new, cache, lengths):
    """Plain jnp ``decode_step``: scatter the new token, then ``decode_reference``."""
    b = q.shape[0]
    pos = jnp.asarray(lengths) - 1
    bi = jnp.arange(b)
    if isinstance(cache, PagedKVCache):
        ps = cache.k_pages.shape[2]
        page = cache.page_table[bi, pos // ps]
        k = cache.k_pages.at[page, :, pos % ps].set(k_new)
        v = cache.v_pages.at[page, :, pos % ps].set(v_new)
        new = PagedKVCache(k, v, cache.page_table)
        out = decode_reference(q, gather_pages(k, cache.page_table),
                               gather_pages(v, cache.page_table), lengths)
        return out, new
    k = cache.k.at[bi, :, pos].set(k_new)
    v = cache.v.at[bi, :, pos].set(v_new)
    return decode_reference(q, k, v, lengths), KVCache(k, v)
