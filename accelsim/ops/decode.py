"""The decode-attention op: one new token per sequence over a KV cache, append included (kernels/decode.py),
tiled by accelsim/tiling/decode.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from accelsim.ops.registry import Op, memoised, normal_array, register
from accelsim.shapes import DecodeShape
from accelsim.tiling.decode import plan_decode
from kernels.decode import KVCache, decode_reference, decode_step


def _plan(shape: DecodeShape, chip, dtype: str, blocks: dict | None = None):
    s = shape
    blocks = blocks or {}
    return plan_decode([s.context] * s.batch, s.heads, s.kv_heads, s.head_dim, s.context, chip,
                       dtype, block_kv=blocks.get("block_kv"), splits=blocks.get("splits"))


def _inputs(shape: DecodeShape, dtype: str, seed: int):
    s = shape
    b, g, length, d = s.batch, s.kv_heads, s.context, s.head_dim
    q, new = normal_array(seed, (b, s.heads, d), dtype), normal_array(seed + 1, (b, g, d), dtype)
    cache = KVCache(normal_array(seed + 2, (b, g, length, d), dtype), normal_array(seed + 3, (b, g, length, d), dtype))
    return q, new, cache, jnp.full((b,), length, jnp.int32)


def _build(shape: DecodeShape, dtype: str, blocks: dict, seed: int = 0):
    q, new, cache, lengths = _inputs(shape, dtype, seed)
    fn = jax.jit(lambda q, kn, vn, c, l: decode_step(q, kn, vn, c, l, **blocks)[0])
    return fn, (q, new, new, cache, lengths)


def _build_xla(shape: DecodeShape, dtype: str, seed: int = 0):
    q, _, cache, lengths = _inputs(shape, dtype, seed)
    return jax.jit(decode_reference), (q, cache.k, cache.v, lengths)


DECODE = register(Op(
    name="decode",
    kernel_names=("accelsim_decode_attention", "accelsim_decode_attention_split", "accelsim_decode_combine",
                  "accelsim_paged_decode_attention", "accelsim_kv_append", "accelsim_paged_kv_append",
                  "accelsim_decode_attention_gpu", "accelsim_decode_attention_split_gpu", "accelsim_decode_combine_gpu",
                  "accelsim_paged_decode_attention_gpu", "accelsim_kv_append_gpu", "accelsim_paged_kv_append_gpu"),
    plan=memoised(_plan), build=_build, build_xla=_build_xla,
    label=lambda s: f"decode attention B{s.batch} H{s.heads} G{s.kv_heads} L{s.context} D{s.head_dim}",
    suite_shapes=tuple(DecodeShape(b, h, g, l, d)
                       for b, h, g, l, d in [(8, 8, 2, 8192, 64), (4, 8, 2, 16384, 64), (16, 16, 4, 2048, 128),
                                             (2, 8, 2, 1024, 64)]),
))
