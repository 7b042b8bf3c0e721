"""Split-K matmul: K cut into ``splits`` ranges computed in parallel, then a combine kernel sums them.

For skinny products (decode: M of 1 to 64 rows) the (i, j) grid has too few blocks to keep every unit
busy; splitting K multiplies the parallel blocks by ``splits`` (the stream-K/split-K idea of CUTLASS).

Partial kernel: grid (s, i, j, kk) over (splits, M/bm, N/bn, per), per = cdiv(cdiv(K, bk), splits), kk
fastest. A's block is (i, kb) and B's (kb, j) with kb = min(s * per + kk, nk - 1): steps past the
last k block of the last split repeat the previous block (not copied again) and compute nothing
(``pl.when``). Every split has at least one k block (``split_k_valid``). The f32 partial block
(s, i, j) of the (splits, M, N) partial array stays resident across kk and is written once.
Combine kernel: grid (i, j); reads the (splits, bm, bn) partial blocks at (0, i, j), writes (bm, bn).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels.grid_exec import kernel_call
from kernels.specs import KernelSpecs


def split_k_valid(k: int, bk: int, splits: int) -> bool:
    """Whether ``splits`` ranges of cdiv(nk, splits) k blocks each leave none of them empty."""
    nk = pl.cdiv(k, bk)
    return 1 <= splits <= nk and (splits - 1) * pl.cdiv(nk, splits) < nk


def split_specs(m: int, k: int, n: int, *, bm: int, bn: int, bk: int, splits: int, in_dtype,
                b_dtype=None) -> KernelSpecs:
    nk = pl.cdiv(k, bk)
    per = pl.cdiv(nk, splits)

    def k_block(s, kk):
        return jnp.minimum(s * per + kk, nk - 1)

    return KernelSpecs(
        grid=(splits, pl.cdiv(m, bm), pl.cdiv(n, bn), per),
        in_specs=[pl.BlockSpec((bm, bk), lambda s, i, j, kk: (i, k_block(s, kk))),
                  pl.BlockSpec((bk, bn), lambda s, i, j, kk: (k_block(s, kk), j))],
        out_specs=[pl.BlockSpec((None, bm, bn), lambda s, i, j, kk: (s, i, j))],
        scratch_shapes=[pltpu.VMEM((bm, bn), jnp.float32)],
        in_arrays=[((m, k), in_dtype), ((k, n), b_dtype or in_dtype)], out_arrays=[((splits, m, n), jnp.float32)])


def combine_specs(m: int, n: int, *, bm: int, bn: int, splits: int, out_dtype) -> KernelSpecs:
    return KernelSpecs(
        grid=(pl.cdiv(m, bm), pl.cdiv(n, bn)),
        in_specs=[pl.BlockSpec((splits, bm, bn), lambda i, j: (0, i, j))],
        out_specs=[pl.BlockSpec((bm, bn), lambda i, j: (i, j))], scratch_shapes=[],
        in_arrays=[((splits, m, n), jnp.float32)], out_arrays=[((m, n), out_dtype)])


def _partial_kernel(a_ref, b_ref, o_ref, acc_ref, *, bk: int, k_total: int, per: int, mask_k_tail):
    s, kk = pl.program_id(0), pl.program_id(3)
    kb = s * per + kk

    @pl.when(kk == 0)
    def _init():
        acc_ref[...] = jnp.zeros_like(acc_ref)

    @pl.when(kb * bk < k_total)
    def _compute():
        a, b = a_ref[...], b_ref[...]
        if k_total % bk:
            a, b = mask_k_tail(a, b, kb, bk, k_total)
        acc_ref[...] += jnp.dot(a, b, preferred_element_type=jnp.float32)

    @pl.when(kk == per - 1)
    def _store():
        o_ref[...] = acc_ref[...]


def _combine_kernel(p_ref, o_ref):
    o_ref[...] = jnp.sum(p_ref[...], axis=0).astype(o_ref.dtype)


def split_k_matmul(a: jax.Array, b: jax.Array, *, bm: int, bn: int, bk: int, splits: int, out_dtype,
                   interpret: bool, mask_k_tail, compiled: bool = False) -> jax.Array:
    """C = A @ B as ``splits`` partial products over K ranges, summed by a combine kernel (``compiled``:
    both run by the CPU executor, ``kernels.grid_exec``)."""
    (m, k), n = a.shape, b.shape[1]
    if not split_k_valid(k, bk, splits):
        raise ValueError(f"matmul: {splits} splits of K={k} in blocks of {bk} would leave a split empty")
    specs = split_specs(m, k, n, bm=bm, bn=bn, bk=bk, splits=splits, in_dtype=a.dtype, b_dtype=b.dtype)
    partial = kernel_call(
        functools.partial(_partial_kernel, bk=bk, k_total=k, per=specs.grid[-1], mask_k_tail=mask_k_tail),
        compiled=compiled,
        grid=specs.grid, in_specs=specs.in_specs, out_specs=specs.out_specs[0],
        out_shape=jax.ShapeDtypeStruct((splits, m, n), jnp.float32), scratch_shapes=specs.scratch_shapes,
        interpret=interpret, name="accelsim_matmul_split",
    )(a, b)
    combine = combine_specs(m, n, bm=bm, bn=bn, splits=splits, out_dtype=out_dtype)
    return kernel_call(
        _combine_kernel, compiled=compiled, grid=combine.grid, in_specs=combine.in_specs,
        out_specs=combine.out_specs[0],
        out_shape=jax.ShapeDtypeStruct((m, n), out_dtype), interpret=interpret, name="accelsim_matmul_combine",
    )(partial)
