"""The flash-attention op (prefill): kernels/attention.py, tiled by accelsim/tiling/attention.py."""

from __future__ import annotations

import jax

from accelsim.ops.registry import Op, memoised, normal_array, register
from accelsim.shapes import AttentionShape
from accelsim.tiling.attention import plan_attention
from kernels.attention import flash_attention


def _plan(shape: AttentionShape, chip, dtype: str, blocks: dict | None = None):
    s = shape
    return plan_attention(s.batch, s.heads, s.kv_heads, s.q_len, s.kv_len, s.head_dim,
                          s.causal, chip, dtype, blocks=blocks)


def _inputs(shape: AttentionShape, dtype: str, seed: int):
    s = shape
    q = normal_array(seed, (s.batch, s.heads, s.q_len, s.head_dim), dtype)
    kv = normal_array(seed + 1, (s.batch, s.kv_heads, s.kv_len, s.head_dim), dtype)
    return q, kv, kv


def _build(shape: AttentionShape, dtype: str, blocks: dict, seed: int = 0):
    causal = shape.causal
    return jax.jit(lambda q, k, v: flash_attention(q, k, v, causal=causal, **blocks)), _inputs(shape, dtype, seed)


def _build_xla(shape: AttentionShape, dtype: str, seed: int = 0):
    causal = shape.causal
    fn = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(
        q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3), is_causal=causal))
    return fn, _inputs(shape, dtype, seed)


def _label(s: AttentionShape) -> str:
    return (f"prefill attention B{s.batch} H{s.heads} G{s.kv_heads} S{s.q_len} D{s.head_dim}"
            + (" causal" if s.causal else ""))


ATTENTION = register(Op(
    name="attention", kernel_names=("accelsim_flash_attention", "accelsim_flash_attention_gpu"),
    plan=memoised(_plan), build=_build, build_xla=_build_xla, label=_label,
    suite_shapes=tuple(AttentionShape(b, h, g, s, s, d, causal=True)
                       for b, h, g, s, d in [(1, 8, 2, 1024, 64), (1, 8, 2, 2048, 64), (2, 4, 4, 512, 128),
                                             (1, 8, 8, 256, 64)]),
))
