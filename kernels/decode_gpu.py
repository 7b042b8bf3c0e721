"""The GPU (Triton) forms of the decode kernels: attention (contiguous, split-KV, paged) and the KV append.

The grid forms (``kernels.decode``, ``kernels.kv_append``) read lengths, page tables and the layer
index through TPU scalar prefetch, which only Mosaic TPU lowers. Here they are ordinary inputs,
passed whole (``pl.BlockSpec()``) and read as scalars inside the program; the caches are passed
whole too and each program loads its own (block_kv, D) slices at computed offsets, so a cache is
never staged whole. Triton, not Mosaic GPU: the kv loop streams slices through registers
(``kernels.backend``).

Attention: grid (B, G) (split-KV: (B, G, splits)); program (b, g[, s]) loops over the query heads
of kv head g (static: Triton tensors must have power-of-two sizes, and group = H / G need not be
one) and, for each, over kv blocks 0 .. cdiv(lengths[b], block_kv) - 1 (split s: its range of
per = cdiv(cdiv(L_max, block_kv), splits) blocks). One head's query is a (1, D) row, so scores and
the P @ V product are broadcast-multiply-reduce (``vector=True`` of the shared online-softmax
update): ``tl.dot`` needs 16 rows. Paged: the loop walks pages (page_size rows each, block_kv /
page_size pages per plan block); page ``page_table[b, t]`` is a scalar load. Split-KV writes
each split's f32 (acc, m, l) as the grid form does, and a combine kernel (grid (B, G)) merges
them head by head in a loop over splits (a running max, as the online softmax). Positions
>= lengths[b] are masked loads (read as zero, never dereferenced) and -inf scores.
Append: grid (B, G); program (b, g) stores the new (D,) k and v rows at lengths[b] - 1 of the
aliased caches. Every (b, g) touches its own rows, so the programs never race.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from kernels.attention import online_softmax_update
from kernels.backend import triton_params
from kernels.gpu_tiles import in_bounds, load

_NEG_INIT = float(jnp.finfo(jnp.float32).min)
_WHOLE = pl.BlockSpec()  # the whole array, read at computed offsets


def _cache_at(ref, layer_ref, *index):
    """The view of a (possibly stacked) cache ref at ``index`` (of layer ``layer_ref[0]`` when stacked)."""
    return ref.at[(layer_ref[0], *index)] if layer_ref is not None else ref.at[index]


def _head_update(q, k, v, state, *, start: int, length, scale: float):
    """One kv block of one head's online softmax; q (1, D), k/v (rows, D) loaded with rows >= length as 0."""
    rows = k.shape[0]
    pos = start + lax.broadcasted_iota(jnp.int32, (1, rows), 1)
    v_pos = start + lax.broadcasted_iota(jnp.int32, (rows, 1), 0)
    return online_softmax_update(q, k, v, *state, valid=pos < length, v_valid=v_pos < length, scale=scale,
                                 precision=None, vector=True)


def _init_state(d: int):
    return (jnp.full((1, 1), _NEG_INIT, jnp.float32), jnp.zeros((1, 1), jnp.float32),
            jnp.zeros((1, d), jnp.float32))


def _attend_head(q, load_block, first, stop, *, length, scale: float):
    """Loop kv blocks first .. stop - 1 (``load_block(j) -> (k, v, start)``) over one head's state."""
    def body(j, state):
        k, v, start = load_block(j)
        return _head_update(q, k, v, state, start=start, length=length, scale=scale)

    return lax.fori_loop(first, stop, body, _init_state(q.shape[1]))


def _split_refs(refs, n_scalar: int, n_out: int):
    """(scalars, q, k, v, outputs) from a GPU decode kernel's refs."""
    return refs[:n_scalar], refs[n_scalar], refs[n_scalar + 1], refs[n_scalar + 2], refs[n_scalar + 3:][:n_out]


@functools.partial(jax.jit, static_argnames=("block_kv", "splits", "interpret"))
def contiguous_attention_gpu(q, k_cache, v_cache, lengths, layer, *, block_kv: int, splits: int,
                             interpret: bool = False):
    """Decode attention of q (B, H, D) over a contiguous cache in the Triton form (module docstring)."""
    (b, h, d), (g, l_max) = q.shape, k_cache.shape[-3:-1]
    group = h // g
    scale = 1.0 / math.sqrt(d)
    per = pl.cdiv(pl.cdiv(l_max, block_kv), splits)
    scalars = [lengths.astype(jnp.int32)] + ([] if layer is None else [layer])

    def kernel(*refs):
        (lens_ref, *layer_ref), q_ref, k_ref, v_ref, outs = _split_refs(refs, len(scalars), 1 if splits == 1 else 2)
        layer_ref = layer_ref[0] if layer_ref else None
        bi, gi = pl.program_id(0), pl.program_id(1)
        length = lens_ref[bi]
        n_blocks = pl.cdiv(length, block_kv)
        first, stop = (0, n_blocks) if splits == 1 else (
            pl.program_id(2) * per, jnp.minimum((pl.program_id(2) + 1) * per, n_blocks))

        def load_block(j):
            start = j * block_kv
            mask = in_bounds(start, block_kv, length)[:, None]
            window = (bi, gi, pl.ds(start, block_kv), slice(None))
            return (load(_cache_at(k_ref, layer_ref, *window), mask).astype(q_ref.dtype),
                    load(_cache_at(v_ref, layer_ref, *window), mask).astype(q_ref.dtype), start)

        for hh in range(group):
            head = jnp.int32(hh)  # an array index: interpret mode's masked load needs one
            m, l, acc = _attend_head(q_ref[head][None, :], load_block, first, stop,
                                     length=length, scale=scale)
            if splits == 1:
                outs[0][head] = (acc[0] / jnp.where(l[0] == 0, 1.0, l[0])).astype(outs[0].dtype)
            else:
                outs[0][head] = acc[0]
                outs[1][head, 0] = m[0, 0]
                outs[1][head, 1] = l[0, 0]

    q_spec = pl.BlockSpec((None, None, group, d), lambda bi, gi, *_: (bi, gi, 0, 0))
    inputs = (*scalars, q.reshape(b, g, group, d), k_cache, v_cache)
    in_specs = [_WHOLE] * len(scalars) + [q_spec, _WHOLE, _WHOLE]
    if splits == 1:
        out = pl.pallas_call(
            kernel, grid=(b, g), in_specs=in_specs, out_specs=q_spec,
            out_shape=jax.ShapeDtypeStruct((b, g, group, d), q.dtype), interpret=interpret,
            compiler_params=triton_params(block_kv * d), name="accelsim_decode_attention_gpu")(*inputs)
        return out.reshape(b, h, d)
    part = lambda last: pl.BlockSpec((None, None, None, group, last), lambda bi, gi, si: (bi, gi, si, 0, 0))
    acc, ml = pl.pallas_call(
        kernel, grid=(b, g, splits), in_specs=in_specs, out_specs=[part(d), part(2)],
        out_shape=[jax.ShapeDtypeStruct((b, g, splits, group, d), jnp.float32),
                   jax.ShapeDtypeStruct((b, g, splits, group, 2), jnp.float32)],
        interpret=interpret, compiler_params=triton_params(block_kv * d),
        name="accelsim_decode_attention_split_gpu")(*inputs)
    return _combine_gpu(acc, ml, q.dtype, interpret).reshape(b, h, d)


def _combine_gpu(acc, ml, dtype, interpret: bool):
    """Merge the splits' (acc, m, l) per head: weights exp(m_s - max m), then normalise (grid (B, G))."""
    b, g, splits, group, d = acc.shape

    def kernel(acc_ref, ml_ref, o_ref):
        for hh in range(group):
            head = jnp.int32(hh)

            def merge(s, state):  # running merge: exp(m_s - m) weights against the running max m
                m_run, l_run, acc_run = state
                m_s, l_s = ml_ref[s, head, 0], ml_ref[s, head, 1]
                m_new = jnp.maximum(m_run, m_s)
                old, new = jnp.exp(m_run - m_new), jnp.exp(m_s - m_new)
                return m_new, old * l_run + new * l_s, old * acc_run + new * acc_ref[s, head]

            init = (jnp.float32(_NEG_INIT), jnp.float32(0.0), jnp.zeros((d,), jnp.float32))
            _, total, out = lax.fori_loop(0, splits, merge, init)
            o_ref[head] = (out / jnp.where(total == 0, 1.0, total)).astype(o_ref.dtype)

    whole = lambda last: pl.BlockSpec((None, None, splits, group, last), lambda bi, gi: (bi, gi, 0, 0, 0))
    return pl.pallas_call(
        kernel, grid=(b, g), in_specs=[whole(d), whole(2)],
        out_specs=pl.BlockSpec((None, None, group, d), lambda bi, gi: (bi, gi, 0, 0)),
        out_shape=jax.ShapeDtypeStruct((b, g, group, d), dtype), interpret=interpret,
        compiler_params=triton_params(), name="accelsim_decode_combine_gpu")(acc, ml)


@functools.partial(jax.jit, static_argnames=("interpret",))
def paged_attention_gpu(q, k_pages, v_pages, page_table, lengths, layer, *, interpret: bool = False):
    """Decode attention of q (B, H, D) over a paged cache in the Triton form, one page per loop step."""
    (b, h, d), (g, page_size) = q.shape, k_pages.shape[-3:-1]
    group = h // g
    scale = 1.0 / math.sqrt(d)
    scalars = [lengths.astype(jnp.int32), page_table.astype(jnp.int32)] + ([] if layer is None else [layer])

    def kernel(*refs):
        (lens_ref, table_ref, *layer_ref), q_ref, k_ref, v_ref, (o_ref,) = _split_refs(refs, len(scalars), 1)
        layer_ref = layer_ref[0] if layer_ref else None
        bi, gi = pl.program_id(0), pl.program_id(1)
        length = lens_ref[bi]

        def load_page(t):
            page, start = table_ref[bi, t], t * page_size
            mask = in_bounds(start, page_size, length)[:, None]
            return (load(_cache_at(k_ref, layer_ref, page, gi), mask).astype(q_ref.dtype),
                    load(_cache_at(v_ref, layer_ref, page, gi), mask).astype(q_ref.dtype), start)

        for hh in range(group):
            head = jnp.int32(hh)
            _, l, acc = _attend_head(q_ref[head][None, :], load_page, 0, pl.cdiv(length, page_size),
                                     length=length, scale=scale)
            o_ref[head] = (acc[0] / jnp.where(l[0] == 0, 1.0, l[0])).astype(o_ref.dtype)

    q_spec = pl.BlockSpec((None, None, group, d), lambda bi, gi: (bi, gi, 0, 0))
    out = pl.pallas_call(
        kernel, grid=(b, g), in_specs=[_WHOLE] * len(scalars) + [q_spec, _WHOLE, _WHOLE], out_specs=q_spec,
        out_shape=jax.ShapeDtypeStruct((b, g, group, d), q.dtype), interpret=interpret,
        compiler_params=triton_params(page_size * d), name="accelsim_paged_decode_attention_gpu",
    )(*scalars, q.reshape(b, g, group, d), k_pages, v_pages)
    return out.reshape(b, h, d)


@functools.partial(jax.jit, static_argnames=("interpret",))
def append_gpu(k_new, v_new, k_store, v_store, lengths, page_table, layer, *, interpret: bool = False):
    """Store k_new, v_new (B, G, D) at lengths[b] - 1 of the aliased caches (paged when ``page_table`` is given)."""
    b, g, d = k_new.shape
    scalars = [lengths.astype(jnp.int32)] + ([] if page_table is None else [page_table.astype(jnp.int32)])
    scalars += [] if layer is None else [layer]
    n = len(scalars)

    def kernel(*refs):
        lens_ref, k_in, v_in, k_out, v_out = refs[0], refs[n], refs[n + 1], refs[-2], refs[-1]
        layer_ref = refs[n - 1] if layer is not None else None
        bi, gi = pl.program_id(0), pl.program_id(1)
        pos = jnp.maximum(lens_ref[bi] - 1, 0)
        if page_table is None:
            index = (bi, gi, pos)
        else:
            page_size = k_store.shape[-2]
            index = (refs[1][bi, lax.div(pos, page_size)], gi, lax.rem(pos, page_size))
        _cache_at(k_out, layer_ref, *index)[...] = k_in[...]
        _cache_at(v_out, layer_ref, *index)[...] = v_in[...]

    new_spec = pl.BlockSpec((None, None, d), lambda bi, gi: (bi, gi, 0))
    return pl.pallas_call(
        kernel, grid=(b, g), in_specs=[_WHOLE] * n + [new_spec, new_spec, _WHOLE, _WHOLE],
        out_specs=[_WHOLE, _WHOLE], out_shape=[jax.ShapeDtypeStruct(k_store.shape, k_store.dtype)] * 2,
        input_output_aliases={n + 2: 0, n + 3: 1}, interpret=interpret, compiler_params=triton_params(),
        name="accelsim_kv_append_gpu" if page_table is None else "accelsim_paged_kv_append_gpu",
    )(*scalars, k_new, v_new, k_store, v_store)
