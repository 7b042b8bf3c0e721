"""The compiled CPU executor (``kernels.grid_exec``) = Pallas interpret mode = a float64 reference.

Shapes are drawn by hypothesis with ragged edges (no block divides them), GQA groups, causal and not,
split-K, split-KV, paged and stacked caches. The compiled path runs under ``lowering_for("cpu")``; its
jaxpr holds no ``pallas_call`` (so it is not interpret mode in disguise), and the tracer's form is
still the ``pallas_call``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.attention import flash_attention
from kernels.backend import lowering_for
from kernels.decode import KVCache, PagedKVCache, decode_step, decode_step_reference
from kernels.matmul import matmul
from kernels.matmul_split import split_k_valid

SETTINGS = dict(derandomize=True, deadline=None, max_examples=3)


def _normal(seed: int, *shape: int) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _both(fn):
    """fn() compiled (``lowering_for("cpu")``) and in interpret mode (``lowering_for("interpret")``)."""
    with lowering_for("cpu"):
        compiled = fn()
    with lowering_for("interpret"):
        interpreted = fn()
    return compiled, interpreted


def _assert_equal_paths_and_close(compiled, interpreted, reference, atol: float) -> None:
    for c, i, r in zip(jax.tree.leaves(compiled), jax.tree.leaves(interpreted), jax.tree.leaves(reference)):
        np.testing.assert_allclose(np.asarray(c), np.asarray(i), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(c, np.float64), np.asarray(r, np.float64), atol=atol)


@st.composite
def matmul_cases(draw):
    bm, bn, bk = (draw(st.sampled_from([8, 16])) for _ in range(3))
    m, n, k = (draw(st.integers(1, 50)) for _ in range(3))
    splits = draw(st.sampled_from([s for s in (1, 2, 3) if split_k_valid(k, bk, s)]))
    return m, k, n, bm, bn, bk, splits


@settings(**SETTINGS)
@given(matmul_cases())
def test_matmul_compiled_equals_interpret_and_float64(case):
    m, k, n, bm, bn, bk, splits = case
    a, b = _normal(m * k, m, k), _normal(k * n + 1, k, n)
    compiled, interpreted = _both(lambda: matmul(a, b, bm=bm, bn=bn, bk=bk, splits=splits))
    reference = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
    _assert_equal_paths_and_close(compiled, interpreted, reference, atol=1e-4)


@st.composite
def attention_cases(draw):
    g = draw(st.sampled_from([1, 2]))
    h = g * draw(st.sampled_from([1, 2, 3]))
    return (draw(st.integers(1, 2)), h, g, draw(st.integers(1, 40)), draw(st.integers(1, 40)),
            draw(st.sampled_from([8, 16])), draw(st.sampled_from([8, 16])), draw(st.booleans()))


@settings(**SETTINGS)
@given(attention_cases())
def test_flash_attention_compiled_equals_interpret_and_float64(case):
    b, h, g, sq, skv, bq, bkv, causal = case
    q, k, v = _normal(1, b, h, sq, 16), _normal(2, b, g, skv, 16), _normal(3, b, g, skv, 16)
    compiled, interpreted = _both(lambda: flash_attention(q, k, v, causal=causal, block_q=bq, block_kv=bkv))
    s = np.einsum("bgrqd,bgkd->bgrqk", np.asarray(q, np.float64).reshape(b, g, h // g, sq, 16),
                  np.asarray(k, np.float64)) / 4.0
    if causal:
        s = np.where(np.tril(np.ones((sq, skv), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    reference = np.einsum("bgrqk,bgkd->bgrqd", p / p.sum(-1, keepdims=True), np.asarray(v, np.float64))
    _assert_equal_paths_and_close(compiled, interpreted, reference.reshape(b, h, sq, 16), atol=1e-5)


@st.composite
def decode_cases(draw):
    b, g = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2]))
    h, block = g * draw(st.sampled_from([1, 3])), draw(st.sampled_from([8, 16]))
    cache_len = draw(st.integers(1, 40))
    lengths = tuple(draw(st.integers(1, cache_len)) for _ in range(b))
    layout = draw(st.sampled_from(["contiguous", "split", "paged", "stacked"]))
    return b, h, g, cache_len, lengths, block, layout


@settings(**dict(SETTINGS, max_examples=4))
@given(decode_cases())
def test_decode_step_compiled_equals_interpret_and_float64(case):
    b, h, g, cache_len, lengths, block, layout = case
    d, page_size = 16, 8
    q, k_new, v_new = _normal(4, b, h, d), _normal(5, b, g, d), _normal(6, b, g, d)
    lens = jnp.asarray(lengths, jnp.int32)
    kwargs = dict(block_kv=block, splits=2 if layout == "split" else 1)
    if layout == "paged":
        max_pages = -(-cache_len // page_size)
        table = jnp.asarray(np.random.default_rng(7).permutation(b * max_pages).reshape(b, max_pages), jnp.int32)
        shape = (b * max_pages, g, page_size, d)
        cache = PagedKVCache(_normal(8, *shape), _normal(9, *shape), table)
        kwargs["block_kv"] = page_size * (block // 8)
    else:
        lead = (2,) if layout == "stacked" else ()
        cache = KVCache(_normal(8, *lead, b, g, cache_len, d), _normal(9, *lead, b, g, cache_len, d))
    layer = 1 if layout == "stacked" else None
    compiled, interpreted = _both(lambda: decode_step(q, k_new, v_new, cache, lens, layer=layer, **kwargs))
    reference = decode_step_reference(q, k_new, v_new, cache, lens, layer=layer)
    _assert_equal_paths_and_close(compiled, interpreted, reference, atol=1e-5)


def _primitives(fn, *args) -> set[str]:
    names = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            names.add(eqn.primitive.name)
            for value in eqn.params.values():
                inner = getattr(value, "jaxpr", None)
                if inner is not None:
                    walk(getattr(inner, "jaxpr", inner))

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return names


def test_compiled_path_has_no_pallas_call_and_interpret_keeps_it():
    a = jnp.ones((24, 24), jnp.float32)
    with lowering_for("cpu"):  # a fresh function per target: jax caches a traced function across contexts
        assert "pallas_call" not in _primitives(lambda x: matmul(x, x, bm=8, bn=8, bk=8), a)
    with lowering_for("interpret"):
        assert "pallas_call" in _primitives(lambda x: matmul(x, x, bm=8, bn=8, bk=8), a)
