"""The matmul op: C = A @ B in (bm, bn, bk) blocks (kernels/matmul.py), tiled by accelsim/tiling/matmul.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from accelsim.ops.registry import Op, memoised, normal_array, register
from accelsim.shapes import MatmulShape
from accelsim.tiling.matmul import plan_matmul
from kernels.matmul import matmul


def _plan(shape: MatmulShape, chip, dtype: str, blocks: dict | None = None, weight_dtype: str | None = None):
    """``weight_dtype``: B's stored dtype where narrower than ``dtype`` (weight-only quantisation)."""
    return plan_matmul(shape.M, shape.K, shape.N, chip, dtype, blocks=blocks, b_dtype=weight_dtype)


def _inputs(shape: MatmulShape, dtype: str, seed: int):
    return normal_array(seed, (shape.M, shape.K), dtype), normal_array(seed + 100, (shape.K, shape.N), dtype)


def _build(shape: MatmulShape, dtype: str, blocks: dict, seed: int = 0):
    return jax.jit(lambda a, b: matmul(a, b, **blocks)), _inputs(shape, dtype, seed)


def _build_xla(shape: MatmulShape, dtype: str, seed: int = 0):
    dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32).astype(a.dtype))
    return dot, _inputs(shape, dtype, seed)


MATMUL = register(Op(
    name="matmul", plan=memoised(_plan), build=_build,
    kernel_names=("accelsim_matmul", "accelsim_matmul_gpu", "accelsim_matmul_split", "accelsim_matmul_combine",
                  "accelsim_matmul_split_gpu", "accelsim_matmul_combine_gpu"),
    build_xla=_build_xla, label=lambda s: f"matmul {s.M}x{s.K}x{s.N}",
    suite_shapes=tuple(MatmulShape(m, k, n) for m, k, n in [
        (1024, 1024, 1024), (2048, 2048, 2048), (512, 4096, 512), (4096, 512, 2048), (256, 256, 256),
        (3072, 3072, 3072)]),
))
