"""The GPU (Triton) form of the tiled matmul, split-K included: the k loop runs inside each program.

Dense: grid (M/bm, N/bn), one program per (bm, bn) output block; A's (bm, nk*bk) row panel and B's
(nk*bk, bn) column panel are its blocks, walked in (bm, bk) and (bk, bn) slices by a
``fori_loop`` (Triton pipelines those slices through ``num_stages`` shared-memory buffers: the
``PIPELINE_BUFFERS`` of ``accelsim.cost.footprint``). Split-K: grid (splits, M/bm, N/bn), program s
walks k blocks s*per .. min((s+1)*per, nk) - 1 and writes its f32 partial block of the (splits, M, N)
partial array; a combine kernel, grid (M/bm, N/bn), sums the splits' blocks in a loop, one (bm, bn) tile at
a time (no (splits, bm, bn) tensor, so any number of splits lowers). Ragged M, N and K tails are
masked loads and stores (``kernels.gpu_tiles``). Same blocks, same bytes as the grid form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.backend import triton_params
from kernels.gpu_tiles import edge_mask, load, store, tile_mask


def _accumulate(a_ref, b_ref, i, j, first, stop, *, bm: int, bn: int, bk: int, m: int, n: int, k: int):
    """The f32 sum over k blocks first .. stop - 1 of the (bm, bk) x (bk, bn) slice products of
    output block (i, j); rows past M, columns past N and the K tail read as zero."""
    rows, cols = edge_mask(i * bm, bm, m), edge_mask(j * bn, bn, n)

    def body(kk, acc):
        ks = edge_mask(kk * bk, bk, k)
        a = load(a_ref.at[:, pl.ds(kk * bk, bk)], tile_mask(rows, ks))
        b = load(b_ref.at[pl.ds(kk * bk, bk), :], tile_mask(ks, cols))
        return acc + jnp.dot(a, b, preferred_element_type=jnp.float32)

    return jax.lax.fori_loop(first, stop, body, jnp.zeros((bm, bn), jnp.float32)), tile_mask(rows, cols)


def _panels(m: int, n: int, k_pad: int, bm: int, bn: int, lead: int):
    """A's (bm, k_pad) row panel and B's (k_pad, bn) column panel on a grid with ``lead`` axes before (i, j)."""
    return [pl.BlockSpec((bm, k_pad), lambda *g: (g[lead], 0)), pl.BlockSpec((k_pad, bn), lambda *g: (0, g[lead + 1]))]


def matmul_gpu(a: jax.Array, b: jax.Array, *, bm: int, bn: int, bk: int, splits: int, out_dtype,
               interpret: bool = False) -> jax.Array:
    """C = A @ B in the Triton form (module docstring); ``splits`` > 1 adds the split-K partials and combine."""
    (m, k), n = a.shape, b.shape[1]
    nk = pl.cdiv(k, bk)
    dims = dict(bm=bm, bn=bn, bk=bk, m=m, n=n, k=k)
    grid = (pl.cdiv(m, bm), pl.cdiv(n, bn))
    if splits == 1:
        def dense(a_ref, b_ref, o_ref):
            i, j = pl.program_id(0), pl.program_id(1)
            acc, mask = _accumulate(a_ref, b_ref, i, j, 0, nk, **dims)
            store(o_ref, acc, mask)

        return pl.pallas_call(
            dense, grid=grid, in_specs=_panels(m, n, nk * bk, bm, bn, 0),
            out_specs=pl.BlockSpec((bm, bn), lambda i, j: (i, j)),
            out_shape=jax.ShapeDtypeStruct((m, n), out_dtype), interpret=interpret,
            compiler_params=triton_params(bm * bn), name="accelsim_matmul_gpu")(a, b)
    per = pl.cdiv(nk, splits)

    def partial(a_ref, b_ref, o_ref):
        s, i, j = pl.program_id(0), pl.program_id(1), pl.program_id(2)
        acc, mask = _accumulate(a_ref, b_ref, i, j, s * per, jnp.minimum((s + 1) * per, nk), **dims)
        store(o_ref, acc, mask)

    parts = pl.pallas_call(
        partial, grid=(splits, *grid), in_specs=_panels(m, n, nk * bk, bm, bn, 1),
        out_specs=pl.BlockSpec((None, bm, bn), lambda s, i, j: (s, i, j)),
        out_shape=jax.ShapeDtypeStruct((splits, m, n), jnp.float32), interpret=interpret,
        compiler_params=triton_params(bm * bn), name="accelsim_matmul_split_gpu")(a, b)

    def combine(p_ref, o_ref):
        mask = tile_mask(edge_mask(pl.program_id(0) * bm, bm, m), edge_mask(pl.program_id(1) * bn, bn, n))
        total = jax.lax.fori_loop(0, splits, lambda s, acc: acc + load(p_ref.at[s], mask),
                                  jnp.zeros((bm, bn), jnp.float32))
        store(o_ref, total, mask)

    return pl.pallas_call(
        combine, grid=grid, in_specs=[pl.BlockSpec((splits, bm, bn), lambda i, j: (0, i, j))],
        out_specs=pl.BlockSpec((bm, bn), lambda i, j: (i, j)),
        out_shape=jax.ShapeDtypeStruct((m, n), out_dtype), interpret=interpret,
        compiler_params=triton_params(bm * bn), name="accelsim_matmul_combine_gpu")(parts)
