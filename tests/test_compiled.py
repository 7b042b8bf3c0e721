"""The compiled CPU executor (``kernels.grid_exec``) = Pallas interpret mode = a float64 reference.

Shapes are drawn by hypothesis with ragged edges (sides the blocks do not divide), GQA groups, causal and
not, split-K, split-KV, paged and stacked caches; inputs are drawn in f32 and cast (bf16 too), and the
reference runs in float64 on those already-rounded values, within a bound scaled by the reduction length
(``accelsim.testing.reduction_tolerance``). The compiled path runs under ``lowering_for("cpu")`` (the CPU
default); its jaxpr holds no ``pallas_call`` (so it is not interpret mode in disguise), and the tracer's
form is still the ``pallas_call``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.testing import as_f64, dtype_name, random_array, reduction_tolerance
from accelsim.trace.workload import trace_workload
from kernels.attention import flash_attention
from kernels.backend import CPU_DEFAULT, kernel_form, lowering_for
from kernels.decode import KVCache, PagedKVCache, decode_step
from kernels.matmul import matmul
from kernels.matmul_split import split_k_valid

SETTINGS = dict(derandomize=True, deadline=None, max_examples=3)
DTYPES = st.sampled_from(["f32", "bf16"])


def _both(fn):
    """fn() compiled (``lowering_for("cpu")``) and in interpret mode (``lowering_for("interpret")``)."""
    with lowering_for("cpu"):
        compiled = fn()
    with lowering_for("interpret"):
        interpreted = fn()
    return compiled, interpreted


def _assert_within(got, expected: np.ndarray, magnitude: np.ndarray, reduction: int) -> None:
    got64 = as_f64(got)
    tolerance = reduction_tolerance(magnitude, reduction, dtype_name(got.dtype))
    error = np.abs(got64 - expected)
    assert np.all(np.isfinite(got64)), "non-finite output"
    assert np.all(error <= tolerance), f"max error {error.max():.3g} over tolerance (worst {np.max(error / tolerance):.3g}x)"


def _assert_paths(compiled, interpreted, expected: np.ndarray, magnitude: np.ndarray, reduction: int) -> None:
    """Both paths within the float64 bound, and within twice it of each other (each is one rounding of it)."""
    _assert_within(compiled, expected, magnitude, reduction)
    _assert_within(interpreted, expected, magnitude, reduction)
    _assert_within(compiled, as_f64(interpreted), 2 * magnitude, reduction)


@st.composite
def matmul_cases(draw):
    bm, bn, bk = (draw(st.sampled_from([8, 16])) for _ in range(3))
    m, k, n = (draw(st.integers(1, 50)) for _ in range(3))
    splits = draw(st.sampled_from([s for s in (1, 2, 3) if split_k_valid(k, bk, s)]))
    return m, k, n, bm, bn, bk, splits, draw(DTYPES), draw(st.integers(0, 2 ** 16))


@settings(**SETTINGS)
@given(matmul_cases())
def test_matmul_compiled_equals_interpret_and_float64(case):
    m, k, n, bm, bn, bk, splits, dtype, seed = case
    a, b = random_array(seed, (m, k), dtype), random_array(seed + 1, (k, n), dtype)
    compiled, interpreted = _both(lambda: matmul(a, b, bm=bm, bn=bn, bk=bk, splits=splits))
    a64, b64 = as_f64(a), as_f64(b)
    _assert_paths(compiled, interpreted, a64 @ b64, np.abs(a64) @ np.abs(b64), k)


def _attention64(q, k, v, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 attention of q (B, H, Sq, D) over k, v (B, G, Skv, D) where ``valid`` (broadcast to
    (B, G, H/G, Sq, Skv)), and the magnitude its error scales with: max |v| times (1 + the largest sum of
    |score terms|), as a score's rounding perturbs its softmax weight relatively."""
    b, h, sq, d = q.shape
    g = k.shape[1]
    qg = q.reshape(b, g, h // g, sq, d)
    scale = 1.0 / math.sqrt(d)
    s = np.where(valid, np.einsum("bgrqd,bgkd->bgrqk", qg, k) * scale, -np.inf)
    terms = np.einsum("bgrqd,bgkd->bgrqk", np.abs(qg), np.abs(k)) * scale
    p = np.exp(s - s.max(-1, keepdims=True))
    out = np.einsum("bgrqk,bgkd->bgrqd", p / p.sum(-1, keepdims=True), v).reshape(b, h, sq, d)
    return out, np.full(out.shape, np.abs(v).max() * (1.0 + terms.max()))


@st.composite
def attention_cases(draw):
    g = draw(st.sampled_from([1, 2]))
    h = g * draw(st.sampled_from([1, 2, 3]))
    return (draw(st.integers(1, 2)), h, g, draw(st.integers(1, 40)), draw(st.integers(1, 40)),
            draw(st.sampled_from([8, 16])), draw(st.sampled_from([8, 16])), draw(st.booleans()), draw(DTYPES),
            draw(st.integers(0, 2 ** 16)))


@settings(**SETTINGS)
@given(attention_cases())
def test_flash_attention_compiled_equals_interpret_and_float64(case):
    b, h, g, sq, skv, bq, bkv, causal, dtype, seed = case
    d = 16
    q, k, v = (random_array(seed + i, shape, dtype) for i, shape in
               enumerate([(b, h, sq, d), (b, g, skv, d), (b, g, skv, d)]))
    compiled, interpreted = _both(lambda: flash_attention(q, k, v, causal=causal, block_q=bq, block_kv=bkv))
    valid = np.tril(np.ones((sq, skv), bool)) if causal else np.ones((sq, skv), bool)
    expected, magnitude = _attention64(as_f64(q), as_f64(k), as_f64(v), valid)
    _assert_paths(compiled, interpreted, expected, magnitude, skv + d)


@st.composite
def decode_cases(draw):
    b, g = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2]))
    h, block = g * draw(st.sampled_from([1, 3])), draw(st.sampled_from([8, 16]))
    cache_len = draw(st.integers(1, 40))
    lengths = tuple(draw(st.integers(1, cache_len)) for _ in range(b))
    return b, h, g, cache_len, lengths, block, draw(DTYPES), draw(st.integers(0, 2 ** 16))


def _decode64(q, k_new, v_new, k, v, lengths) -> tuple[np.ndarray, np.ndarray]:
    """Float64 decode step over contiguous (B, G, L, D) caches: append row lengths-1, attend over lengths."""
    k, v = k.copy(), v.copy()
    for i, n in enumerate(lengths):
        k[i, :, n - 1], v[i, :, n - 1] = k_new[i], v_new[i]
    valid = np.arange(k.shape[2])[None, :] < np.asarray(lengths)[:, None]
    v = np.where(valid[:, None, :, None], v, 0.0)
    out, magnitude = _attention64(q[:, :, None], k, v, valid[:, None, None, None, :])
    return out[:, :, 0], magnitude[:, :, 0]


@pytest.mark.parametrize("layout", ["contiguous", "split", "paged", "stacked"])
@settings(**dict(SETTINGS, max_examples=2))
@given(case=decode_cases())
def test_decode_step_compiled_equals_interpret_and_float64(layout, case):
    b, h, g, cache_len, lengths, block, dtype, seed = case
    d, page_size = 16, 8
    q, k_new, v_new = (random_array(seed + i, shape, dtype) for i, shape in
                       enumerate([(b, h, d), (b, g, d), (b, g, d)]))
    k64, v64 = (as_f64(random_array(seed + 3 + i, (b, g, cache_len, d), dtype)) for i in range(2))
    lens = jnp.asarray(lengths, jnp.int32)
    kwargs = dict(block_kv=block, splits=2 if layout == "split" else 1)
    cast = lambda x: jnp.asarray(x, jnp.float32).astype(q.dtype)  # noqa: E731 - exact: the values came from dtype
    layer = None
    if layout == "paged":
        max_pages = -(-cache_len // page_size)
        table = np.random.default_rng(seed).permutation(b * max_pages).reshape(b, max_pages)
        padded = [np.pad(x, ((0, 0), (0, 0), (0, max_pages * page_size - cache_len), (0, 0))) for x in (k64, v64)]
        pages = [np.zeros((b * max_pages, g, page_size, d)) for _ in range(2)]
        for p, x in zip(pages, padded):
            p[table.reshape(-1)] = x.reshape(b, g, max_pages, page_size, d).transpose(0, 2, 1, 3, 4).reshape(-1, g, page_size, d)
        cache = PagedKVCache(cast(pages[0]), cast(pages[1]), jnp.asarray(table, jnp.int32))
        kwargs["block_kv"] = page_size * (block // 8)
    elif layout == "stacked":
        cache, layer = KVCache(cast(np.stack([0 * k64, k64])), cast(np.stack([0 * v64, v64]))), 1
    else:
        cache = KVCache(cast(k64), cast(v64))
    compiled, interpreted = _both(lambda: decode_step(q, k_new, v_new, cache, lens, layer=layer, **kwargs))
    expected, magnitude = _decode64(as_f64(q), as_f64(k_new), as_f64(v_new), k64, v64, lengths)
    _assert_paths(compiled[0], interpreted[0], expected, magnitude, cache_len + d)
    for c, i in zip(jax.tree.leaves(compiled[1]), jax.tree.leaves(interpreted[1])):
        np.testing.assert_array_equal(as_f64(c), as_f64(i))  # the append writes the same rows, exactly


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


def test_compiled_is_the_cpu_default_and_has_no_pallas_call():
    assert CPU_DEFAULT == "cpu" and kernel_form(None) == "compiled"  # tests run on the CPU backend
    a = jnp.ones((24, 24), jnp.float32)
    with lowering_for("cpu"):
        assert "pallas_call" not in _primitives(lambda x: matmul(x, x, bm=8, bn=8, bk=8), a)
    with lowering_for("interpret"):
        assert "pallas_call" in _primitives(lambda x: matmul(x, x, bm=8, bn=8, bk=8), a)
        assert kernel_form(None) == "pallas" and kernel_form(True) == "pallas"


def test_a_jitted_workload_run_compiled_is_traced_in_its_pallas_form():
    fn = jax.jit(lambda x: matmul(x, x, bm=8, bn=8, bk=8))
    a = jnp.ones((24, 24), jnp.float32)
    with lowering_for("cpu"):
        jax.block_until_ready(fn(a))  # fills jit's cache with the compiled form
    trace = trace_workload(fn, a)
    assert len(trace.kernels) == 1
    assert sum(trace.kernels[0].dots.values()) == 3 * 3 * 3  # one (8, 8, 8) block product per grid step
