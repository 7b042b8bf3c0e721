"""Tiled matmul as a Pallas kernel whose (bm, bn, bk) blocks come from a tiling plan.

Grid (i, j, k) over (M/bm, N/bn, K/bk), k fastest. A's block (i, k) and B's block (k, j) are
copied in each step; the output block (i, j) stays resident across k (an f32 accumulator in
scratch) and is written once. Ragged edges: Pallas pads out-of-bounds block elements (with NaN
in interpret mode), so the K tail is masked to zero in both operands; M and N tails only produce
rows/columns that are discarded on write-back.

On a GPU target the Triton form runs instead (``kernels.matmul_gpu``): Triton runs grid programs in
parallel, so the k loop moves inside the program (same blocks, same copies); Triton rather than
Mosaic GPU because it streams the k slices instead of staging whole panels (``kernels.backend``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels.backend import default_interpret, kernel_form
from kernels.grid_exec import kernel_call
from kernels.matmul_gpu import matmul_gpu
from kernels.matmul_split import split_k_matmul
from kernels.specs import KernelSpecs


def _mask_k_tail(a, b, k_index, bk: int, k_total: int):
    """Zero the columns of a and rows of b that lie past K in the last (ragged) k block."""
    valid = k_total - k_index * bk
    cols = jax.lax.broadcasted_iota(jnp.int32, a.shape, 1)
    rows = jax.lax.broadcasted_iota(jnp.int32, b.shape, 0)
    return jnp.where(cols < valid, a, 0).astype(a.dtype), jnp.where(rows < valid, b, 0).astype(b.dtype)


def _matmul_kernel(a_ref, b_ref, o_ref, acc_ref, *, bk: int, k_total: int):
    k = pl.program_id(2)

    @pl.when(k == 0)
    def _init():
        acc_ref[...] = jnp.zeros_like(acc_ref)

    a, b = a_ref[...], b_ref[...]
    if k_total % bk:
        a, b = _mask_k_tail(a, b, k, bk, k_total)
    acc_ref[...] += jnp.dot(a, b, preferred_element_type=jnp.float32)

    @pl.when(k == pl.num_programs(2) - 1)
    def _store():
        o_ref[...] = acc_ref[...].astype(o_ref.dtype)


def matmul_specs(m: int, k: int, n: int, *, bm: int, bn: int, bk: int, in_dtype, out_dtype, b_dtype=None) -> KernelSpecs:
    """Grid (i, j, k), A blocks (bm, bk) at (i, k), B blocks (bk, bn) at (k, j), C blocks (bm, bn) at (i, j),
    and the f32 accumulator scratch."""
    return KernelSpecs(
        grid=(pl.cdiv(m, bm), pl.cdiv(n, bn), pl.cdiv(k, bk)),
        in_specs=[pl.BlockSpec((bm, bk), lambda i, j, kk: (i, kk)), pl.BlockSpec((bk, bn), lambda i, j, kk: (kk, j))],
        out_specs=[pl.BlockSpec((bm, bn), lambda i, j, kk: (i, j))],
        scratch_shapes=[pltpu.VMEM((bm, bn), jnp.float32)],
        in_arrays=[((m, k), in_dtype), ((k, n), b_dtype or in_dtype)], out_arrays=[((m, n), out_dtype)])


def matmul(a: jax.Array, b: jax.Array, *, bm: int, bn: int, bk: int, splits: int = 1, out_dtype=None,
           interpret: bool | None = None) -> jax.Array:
    """C = A @ B with f32 accumulation, executed in (bm, bn, bk) blocks; any M, K, N. ``splits`` > 1 cuts
    K into that many ranges computed in parallel and summed (kernels/matmul_split.py).

    ``interpret=None``: on CPU the compiled executor (``kernels.grid_exec``; ``interpret=True``: Pallas
    interpret mode), Mosaic on TPU, the Triton form on a GPU target (``kernels.matmul_gpu``;
    ``kernels.backend.lowering_for``)."""
    k_total, k2 = a.shape[1], b.shape[0]
    if k_total != k2:
        raise ValueError(f"matmul: inner dimensions differ ({k_total} vs {k2})")
    out_dtype = jnp.dtype(out_dtype or jnp.result_type(a.dtype, b.dtype))
    form = kernel_form(interpret)
    interpret = default_interpret() if interpret is None else interpret
    return _matmul(a, b, bm=bm, bn=bn, bk=bk, splits=splits, out_dtype=out_dtype, interpret=interpret, form=form)


@functools.partial(jax.jit, static_argnames=("bm", "bn", "bk", "splits", "out_dtype", "interpret", "form"))
def _matmul(a, b, *, bm: int, bn: int, bk: int, splits: int, out_dtype, interpret: bool, form: str):
    (m, k_total), n = a.shape, b.shape[1]
    if form == "gpu":
        return matmul_gpu(a, b, bm=bm, bn=bn, bk=bk, splits=splits, out_dtype=out_dtype)
    if splits > 1:
        return split_k_matmul(a, b, bm=bm, bn=bn, bk=bk, splits=splits, out_dtype=out_dtype, interpret=interpret,
                              mask_k_tail=_mask_k_tail, compiled=form == "compiled")
    specs = matmul_specs(m, k_total, n, bm=bm, bn=bn, bk=bk, in_dtype=a.dtype, out_dtype=out_dtype)
    return kernel_call(
        functools.partial(_matmul_kernel, bk=bk, k_total=k_total), compiled=form == "compiled",
        grid=specs.grid,
        in_specs=specs.in_specs,
        out_specs=specs.out_specs[0],
        out_shape=jax.ShapeDtypeStruct((m, n), out_dtype),
        scratch_shapes=specs.scratch_shapes,
        interpret=interpret,
        name="accelsim_matmul",
    )(a, b)


def matmul_reference(a: jax.Array, b: jax.Array) -> jax.Array:
    """Plain jnp: f32-accumulated product in the inputs' result dtype."""
    out_dtype = jnp.result_type(a.dtype, b.dtype)
    return jnp.dot(a, b, preferred_element_type=jnp.float32).astype(out_dtype)
