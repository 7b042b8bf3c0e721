"""Flash attention and decode attention kernels: outputs vs float64, vs jax.nn, token-by-token
decode vs full causal attention, paged == contiguous, bad input, and the bytes each BlockSpec
causes (index maps evaluated over the grid) == the closed forms in the kernel modules."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from jax.experimental import pallas as pl

from accelsim.errors import AccelsimError
from kernels.attention import (_flash_attention_gpu, attention_reference, flash_attention,
                               flash_attention_hbm_bytes)
from kernels.decode import (KVCache, PagedKVCache, decode_attention, decode_hbm_bytes,
                            decode_reference, decode_step, decode_step_reference, gather_pages,
                            paged_decode_attention)

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPS32 = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------------------------------------
# Helpers: data, float64 references, tolerances.

def _rounded(rng, shape, dtype, scale=1.0):
    """Standard normal drawn in f32, cast to dtype; returns (jax array, float64 numpy copy)."""
    x = (rng.standard_normal(shape).astype(np.float32) * scale).astype(dtype)  # numpy casts
    return jnp.asarray(x), x.astype(np.float64)


def _softmax_attend(s, v):
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    return (p / p.sum(axis=-1, keepdims=True)) @ v


def _attention_f64(q, k, v, causal):
    b, h, sq, d = q.shape
    group = h // k.shape[1]
    kk, vv = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = q @ kk.transpose(0, 1, 3, 2) / np.sqrt(d)
    if causal:
        s = np.where(np.tril(np.ones((sq, k.shape[2]), bool)), s, -np.inf)
    return _softmax_attend(s, vv)


def _decode_f64(q, k, v, lengths):
    b, h, d = q.shape
    group = h // k.shape[1]
    out = np.zeros((b, h, d))
    for i, n in enumerate(lengths):
        kk = np.repeat(k[i, :, :n], group, axis=0)  # (H, n, D)
        vv = np.repeat(v[i, :, :n], group, axis=0)
        s = np.einsum("hd,hnd->hn", q[i], kk) / np.sqrt(d)
        out[i] = np.einsum("hn,hnd->hd", np.exp(s - s.max(-1, keepdims=True)) /
                           np.exp(s - s.max(-1, keepdims=True)).sum(-1, keepdims=True), vv)
    return out


def _tolerance(dtype, reduction: int, vmax: float) -> float:
    """Bound on |out - ref| for outputs that are convex combinations of v rows (|v| <= vmax).

    Inputs are already rounded, so the error is: f32 accumulation (grows with the reduction length
    D + Skv), plus, in bf16, rounding of p before the PV matmul and of the output (2^-9 each)."""
    rounding = 2.0 ** -8 if jnp.dtype(dtype) == jnp.bfloat16 else 0.0
    return vmax * (rounding + 8 * EPS32 * reduction) + 1e-6


def _assert_close(out, ref, dtype, reduction, vmax):
    err = float(np.max(np.abs(np.asarray(out).astype(np.float64) - ref)))
    tol = _tolerance(dtype, reduction, vmax)
    assert np.isfinite(err) and err <= tol, f"max error {err:.3g} > tolerance {tol:.3g}"


dtypes = st.sampled_from([jnp.float32, jnp.bfloat16])
head_dims = st.sampled_from([16, 32, 64, 128])
blocks = st.sampled_from([8, 16, 32])


@st.composite
def attention_cases(draw):
    g = draw(st.sampled_from([1, 2]))
    group = draw(st.sampled_from([1, 2])) if g == 2 else draw(st.sampled_from([1, 2, 4]))
    return dict(b=draw(st.integers(1, 2)), h=g * group, g=g, sq=draw(st.integers(1, 70)),
                skv=draw(st.integers(1, 70)), d=draw(head_dims), block_q=draw(blocks),
                block_kv=draw(blocks), causal=draw(st.booleans()), dtype=draw(dtypes),
                seed=draw(st.integers(0, 2 ** 16)))


def _attention_inputs(c):
    rng = np.random.default_rng(c["seed"])
    q, q64 = _rounded(rng, (c["b"], c["h"], c["sq"], c["d"]), c["dtype"])
    k, k64 = _rounded(rng, (c["b"], c["g"], c["skv"], c["d"]), c["dtype"])
    v, v64 = _rounded(rng, (c["b"], c["g"], c["skv"], c["d"]), c["dtype"])
    return (q, k, v), (q64, k64, v64)


# ---------------------------------------------------------------------------------------------
# Flash attention outputs

@settings(max_examples=10, **SETTINGS)
@given(attention_cases())
@example(dict(b=1, h=4, g=2, sq=33, skv=47, d=64, block_q=16, block_kv=32, causal=True,
              dtype=jnp.bfloat16, seed=1))  # bf16, GQA, causal, both lengths ragged
def test_flash_attention_matches_float64(c):
    (q, k, v), (q64, k64, v64) = _attention_inputs(c)
    out = flash_attention(q, k, v, causal=c["causal"], block_q=c["block_q"],
                          block_kv=c["block_kv"], interpret=True)
    assert out.shape == q.shape and out.dtype == q.dtype
    ref = _attention_f64(q64, k64, v64, c["causal"])
    _assert_close(out, ref, c["dtype"], c["d"] + c["skv"], np.abs(v64).max())


@settings(max_examples=4, **SETTINGS)
@given(attention_cases())
def test_gpu_form_matches_float64_in_interpret_mode(c):
    """The Triton form (kv loop inside the program) runs here in interpret mode."""
    (q, k, v), (q64, k64, v64) = _attention_inputs(c)
    out = _flash_attention_gpu(q, k, v, causal=c["causal"], block_q=c["block_q"],
                               block_kv=c["block_kv"], interpret=True)
    ref = _attention_f64(q64, k64, v64, c["causal"])
    _assert_close(out, ref, c["dtype"], c["d"] + c["skv"], np.abs(v64).max())


@pytest.mark.parametrize("b,h,g,sq,skv,d,bq,bkv,causal", [
    (1, 4, 2, 24, 24, 64, 8, 16, True),     # square causal, GQA
    (2, 2, 1, 19, 45, 32, 8, 16, True),     # causal Sq < Skv (top-left aligned), MQA, ragged
    (1, 2, 2, 45, 13, 16, 16, 8, True),     # causal Sq > Skv
    (1, 4, 4, 13, 37, 128, 8, 32, False),   # MHA, head_dim 128, ragged
])
def test_flash_attention_matches_jax_nn(b, h, g, sq, skv, d, bq, bkv, causal):
    rng = np.random.default_rng(sq * 100 + skv)
    q, _ = _rounded(rng, (b, h, sq, d), jnp.float32)
    k, _ = _rounded(rng, (b, g, skv, d), jnp.float32)
    v, v64 = _rounded(rng, (b, g, skv, d), jnp.float32)
    out = flash_attention(q, k, v, causal=causal, block_q=bq, block_kv=bkv, interpret=True)
    t = lambda x: x.transpose(0, 2, 1, 3)  # ours (B, H, S, D); jax.nn (B, S, H, D)
    jax_nn = jax.jit(functools.partial(jax.nn.dot_product_attention, is_causal=causal,
                                       implementation="xla"))
    ref = t(jax_nn(t(q), t(k), t(v)))
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=_tolerance(jnp.float32, d + skv, np.abs(v64).max()))
    np.testing.assert_allclose(np.asarray(attention_reference(q, k, v, causal)), np.asarray(ref),
                               atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Decode outputs

def _paged_copy(rng, k, v, page_size, spare_pages=3):
    """Scatter contiguous (B, G, L, D) caches into shuffled pages; L must be a page multiple."""
    b, g, l_max, d = k.shape
    max_pages = l_max // page_size
    num_pages = b * max_pages + spare_pages
    table = rng.permutation(num_pages)[:b * max_pages].reshape(b, max_pages).astype(np.int32)

    def scatter(x):  # numpy: no XLA compile per new shape
        pages = np.zeros((num_pages, g, page_size, d), x.dtype)
        pages[table] = np.asarray(x).reshape(b, g, max_pages, page_size, d).transpose(0, 2, 1, 3, 4)
        return jnp.asarray(pages)

    return PagedKVCache(scatter(k), scatter(v), jnp.asarray(table))


def test_decode_token_by_token_equals_full_causal_attention():
    """Prefill each sequence to a different length, append one token at a time with decode_step
    (contiguous, and paged with 1 and 2 pages per block over a shuffled page table): every step's
    output equals the row of full causal attention at that position, and paged == contiguous."""
    b, h, g, d, l_max, page_size, steps = 3, 4, 2, 32, 32, 4, 7
    rng = np.random.default_rng(7)
    qs, _ = _rounded(rng, (b, h, l_max, d), jnp.float32)
    ks, _ = _rounded(rng, (b, g, l_max, d), jnp.float32)
    vs, v64 = _rounded(rng, (b, g, l_max, d), jnp.float32)
    full = flash_attention(qs, ks, vs, causal=True, block_q=8, block_kv=8, interpret=True)
    prefill = np.array([1, 9, 24], np.int32)  # ragged; the last ends at l_max - 1 after 7 steps
    keep = np.arange(l_max)[None, None, :, None] < prefill[:, None, None, None]
    k0, v0 = jnp.where(keep, ks, 0.0), jnp.where(keep, vs, 0.0)
    caches = {"contiguous": KVCache(k0, v0)}
    for m in (1, 2):
        caches[f"paged{m}"] = _paged_copy(np.random.default_rng(m), k0, v0, page_size)
    block = {"contiguous": 8, "paged1": page_size, "paged2": 2 * page_size}
    tol = _tolerance(jnp.float32, d + l_max, np.abs(v64).max())
    bi = np.arange(b)
    for t in range(steps):
        pos = prefill + t  # position of the new token
        lengths = jnp.asarray(pos + 1)
        q, k_new, v_new = qs[bi, :, pos], ks[bi, :, pos], vs[bi, :, pos]
        want = np.asarray(full[bi, :, pos])
        outs = {}
        for name in caches:
            outs[name], caches[name] = decode_step(q, k_new, v_new, caches[name], lengths,
                                                   block_kv=block[name], interpret=True)
            np.testing.assert_allclose(np.asarray(outs[name]), want, atol=tol, err_msg=f"{name} step {t}")
        # same blocks (block_kv = 8 = 2 pages) => the same arithmetic, bit for bit
        np.testing.assert_array_equal(np.asarray(outs["paged2"]), np.asarray(outs["contiguous"]))
        np.testing.assert_allclose(np.asarray(outs["paged1"]), np.asarray(outs["contiguous"]), atol=1e-6)
    final = prefill + steps
    keep = np.arange(l_max)[None, None, :, None] < final[:, None, None, None]
    np.testing.assert_array_equal(np.asarray(caches["contiguous"].k), np.asarray(jnp.where(keep, ks, 0.0)))
    for m in (1, 2):
        c = caches[f"paged{m}"]
        np.testing.assert_array_equal(np.asarray(gather_pages(c.v_pages, c.page_table)),
                                      np.asarray(jnp.where(keep, vs, 0.0)))


@st.composite
def decode_cases(draw):
    g = draw(st.sampled_from([1, 2]))
    group = draw(st.sampled_from([1, 2, 4]))
    b = draw(st.integers(1, 3))
    page_size = draw(st.sampled_from([4, 8]))
    max_pages = draw(st.integers(1, 6))
    l_max = page_size * max_pages
    return dict(b=b, h=g * group, g=g, d=draw(st.sampled_from([16, 64])), page_size=page_size,
                l_max=l_max, m=draw(st.sampled_from([1, 2])),
                lengths=draw(st.lists(st.integers(1, l_max), min_size=b, max_size=b)),
                dtype=draw(dtypes), seed=draw(st.integers(0, 2 ** 16)))


@settings(max_examples=6, **SETTINGS)
@given(decode_cases())
def test_decode_attention_matches_float64_contiguous_and_paged(c):
    rng = np.random.default_rng(c["seed"])
    q, q64 = _rounded(rng, (c["b"], c["h"], c["d"]), c["dtype"])
    k, k64 = _rounded(rng, (c["b"], c["g"], c["l_max"], c["d"]), c["dtype"])
    v, v64 = _rounded(rng, (c["b"], c["g"], c["l_max"], c["d"]), c["dtype"])
    lengths = np.array(c["lengths"], np.int32)
    ref = _decode_f64(q64, k64, v64, lengths)
    vmax = np.abs(v64).max()
    block_kv = c["m"] * c["page_size"]
    out = decode_attention(q, k, v, jnp.asarray(lengths), block_kv=block_kv, interpret=True)
    assert out.shape == q.shape and out.dtype == q.dtype
    _assert_close(out, ref, c["dtype"], c["d"] + c["l_max"], vmax)
    paged = _paged_copy(rng, k, v, c["page_size"])
    out_p = paged_decode_attention(q, paged.k_pages, paged.v_pages, paged.page_table,
                                   jnp.asarray(lengths), block_kv=block_kv, interpret=True)
    np.testing.assert_array_equal(np.asarray(out_p), np.asarray(out))


def test_decode_step_reference_agrees():
    """decode_step vs decode_step_reference (new caches bit-equal). Same shapes and blocks as the
    token-by-token test, so the compiled kernels are reused."""
    rng = np.random.default_rng(3)
    b, h, g, d, l_max = 3, 4, 2, 32, 32
    q, _ = _rounded(rng, (b, h, d), jnp.float32)
    kn, _ = _rounded(rng, (b, g, d), jnp.float32)
    vn, _ = _rounded(rng, (b, g, d), jnp.float32)
    k, _ = _rounded(rng, (b, g, l_max, d), jnp.float32)
    v, _ = _rounded(rng, (b, g, l_max, d), jnp.float32)
    lengths = jnp.asarray([5, 32, 1], jnp.int32)
    for cache in (KVCache(k, v), _paged_copy(rng, k, v, 4)):
        out, new = decode_step(q, kn, vn, cache, lengths, block_kv=8, interpret=True)
        ref, new_ref = decode_step_reference(q, kn, vn, cache, lengths)
        np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5)
        for a, r in zip(new, new_ref):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(r))
    np.testing.assert_allclose(np.asarray(decode_attention(q, k, v, lengths, block_kv=8, interpret=True)),
                               np.asarray(decode_reference(q, k, v, lengths)), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Bad input

def _z(*shape, dtype=jnp.float32):
    return jnp.asarray(np.zeros(shape, dtype))  # numpy: no XLA compile per new shape


_Q, _K = _z(1, 4, 8, 16), _z(1, 2, 8, 16)
_BAD_ATTENTION = {
    "kv heads do not divide": (_z(1, 3, 8, 16), _K, _K, {}),
    "head_dim": (_Q, _z(1, 2, 8, 32), _z(1, 2, 8, 32), {}),
    "non-positive dimension": (_z(1, 4, 0, 16), _K, _K, {}),
    "block_q must be a positive": (_Q, _K, _K, {"block_q": 0}),
    "not executable": (_z(1, 4, 8, 16, dtype=jnp.int32), _K, _K, {}),
    "4-D": (_z(4, 8, 16), _K, _K, {}),
}


@pytest.mark.parametrize("needle", list(_BAD_ATTENTION))
def test_flash_attention_bad_input(needle):
    q, k, v, kw = _BAD_ATTENTION[needle]
    args = dict(causal=True, block_q=8, block_kv=8) | kw
    with pytest.raises(AccelsimError, match=needle) as e:
        flash_attention(q, k, v, **args)
    assert "\n" not in str(e.value)


def _bad_decode_cases():
    q, kn = _z(2, 4, 16), _z(2, 2, 16)
    cache = KVCache(_z(2, 2, 16, 16), _z(2, 2, 16, 16))
    pages = PagedKVCache(_z(9, 2, 4, 16), _z(9, 2, 4, 16), jnp.arange(8, dtype=jnp.int32).reshape(2, 4))
    ok = jnp.asarray([3, 16], jnp.int32)
    return {
        "kv heads do not divide": (_z(2, 3, 16), kn, cache, ok, 8),
        "longer than the cache": (q, kn, cache, jnp.asarray([3, 17], jnp.int32), 8),
        "lengths must be >= 1": (q, kn, cache, jnp.asarray([0, 3], jnp.int32), 8),
        "does not fit block_kv": (q, kn, pages, ok, 6),
        "pages of 4 positions": (q, kn, pages, jnp.asarray([3, 17], jnp.int32), 8),
        "outside \\[0, 9\\)": (q, kn, pages._replace(page_table=pages.page_table.at[0, 0].set(9)), ok, 8),
        "non-positive dimension": (_z(2, 4, 0), kn, cache, ok, 8),
        "block_kv must be a positive": (q, kn, cache, ok, 0),
        "k_new must have shape": (q, _z(2, 2, 8), cache, ok, 8),
    }


@pytest.mark.parametrize("needle", list(_bad_decode_cases()))
def test_decode_bad_input(needle):
    q, kn, cache, lengths, block_kv = _bad_decode_cases()[needle]
    with pytest.raises(AccelsimError, match=needle) as e:
        decode_step(q, kn, kn, cache, lengths, block_kv=block_kv)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# Executed bytes: evaluate every BlockSpec's index map over the grid (row-major, last axis
# fastest); a block is copied at a step iff its index differs from the previous step's; a copy
# moves the block clipped to the array. Must equal the closed forms exactly.

def _int_div(a, b):  # lax.div on integers truncates toward zero
    return np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))


def _dynamic_slice(x, *starts, slice_sizes):
    starts = [min(max(int(s), 0), dim - size) for s, dim, size in zip(starts, x.shape, slice_sizes)]
    return x[tuple(slice(s, s + size) for s, size in zip(starts, slice_sizes))]


# numpy forms of the primitives that appear in the kernels' index maps and wrappers; anything
# else falls back to jax (eager)
_ELEMENTWISE = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "min": np.minimum,
    "max": np.maximum, "div": _int_div, "rem": np.fmod, "sign": np.sign, "neg": np.negative,
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
    "gt": np.greater, "ge": np.greater_equal, "and": np.logical_and, "or": np.logical_or,
    "not": np.logical_not,
}
_NUMPY = {
    **{name: (lambda f: lambda *xs, **_: f(*xs))(f) for name, f in _ELEMENTWISE.items()},
    "select_n": lambda pred, *cases: np.choose(np.asarray(pred, np.int64), cases),
    "convert_element_type": lambda x, new_dtype, **_: np.asarray(x).astype(new_dtype),
    "squeeze": lambda x, dimensions: np.squeeze(x, axis=tuple(dimensions)),
    "reshape": lambda x, new_sizes, **_: np.reshape(x, new_sizes),
    "dynamic_slice": _dynamic_slice,
    "copy": lambda x, **_: x, "copy_p": lambda x, **_: x,
}


def _eval(jaxpr, consts, args, on_pallas=None):
    """Evaluate a jaxpr on numpy values. pallas_call eqns are not run: ``on_pallas(eqn, ins)``
    is called and their outputs are zeros."""
    from jax.extend.core import Literal

    env = dict(zip(jaxpr.constvars, consts)) | dict(zip(jaxpr.invars, args))
    read = lambda a: np.asarray(a.val) if isinstance(a, Literal) else env[a]
    for eqn in jaxpr.eqns:
        ins = [read(a) for a in eqn.invars]
        name = eqn.primitive.name
        if name == "pallas_call":
            on_pallas(eqn, ins)
            outs = [np.zeros(o.aval.shape, o.aval.dtype) for o in eqn.outvars]
        elif name in ("pjit", "jit", "closed_call"):
            sub = eqn.params.get("jaxpr") or eqn.params["call_jaxpr"]
            outs = _eval(sub.jaxpr, sub.consts, ins, on_pallas)
        elif name in _NUMPY:
            outs = [np.asarray(_NUMPY[name](*ins, **eqn.params))]
        else:
            outs = eqn.primitive.bind(*map(jnp.asarray, ins), **eqn.primitive.get_bind_params(eqn.params))
            outs = [np.asarray(o) for o in (outs if eqn.primitive.multiple_results else [outs])]
        env.update(zip(eqn.outvars, outs))
    return [read(a) for a in jaxpr.outvars]


def _pallas_calls(fn, *args):
    """[(eqn, operand values)] for each pallas_call in fn's jaxpr, the jaxpr evaluated on the
    concrete args (so scalar-prefetch operands such as lengths and page tables are known)."""
    closed = jax.make_jaxpr(fn)(*args)
    found = []
    _eval(closed.jaxpr, closed.consts, [np.asarray(x) for x in jax.tree.leaves(args)],
          lambda eqn, ins: found.append((eqn, ins)))
    return found


def _block_bytes(eqn, operands):
    """Bytes copied per block mapping (inputs then outputs); None for memory-space-ANY operands."""
    from jax._src.state.discharge import discharge_state

    gm = eqn.params["grid_mapping"]
    grid = tuple(int(n) for n in gm.grid)
    prefetch = list(operands[:gm.num_index_operands])
    result = []
    for bm in gm.block_mappings:
        if bm.block_aval.memory_space == pl.ANY:
            result.append(None)
            continue
        pure = discharge_state(bm.index_map_jaxpr)  # scalar-prefetch refs -> plain values
        n_out = len(bm.index_map_jaxpr.jaxpr.outvars)
        itemsize = np.dtype(bm.array_aval.dtype).itemsize
        total, prev = 0, None
        for step in np.ndindex(*grid):  # row-major: last grid axis fastest
            idx = tuple(int(i) for i in _eval(pure.jaxpr, pure.consts,
                                              [np.int32(i) for i in step] + prefetch)[:n_out])
            if idx == prev:
                continue  # revisiting: same block as the previous step, not copied again
            prev = idx
            n = 1
            for dim, bd, i in zip(bm.array_aval.shape, bm.block_shape, idx):
                start, size = (i * bd.block_size, bd.block_size) if isinstance(bd, pl.Blocked) else (i, 1)
                n *= max(0, min(start + size, dim) - start)
            total += n * itemsize
        result.append(total)
    return result


@settings(max_examples=60, **SETTINGS)
@given(attention_cases())
def test_flash_attention_traced_bytes_equal_closed_form(c):
    q = _z(c["b"], c["h"], c["sq"], c["d"], dtype=c["dtype"])
    k = _z(c["b"], c["g"], c["skv"], c["d"], dtype=c["dtype"])
    fn = functools.partial(flash_attention, causal=c["causal"], block_q=c["block_q"],
                           block_kv=c["block_kv"], interpret=True)
    (call,) = _pallas_calls(fn, q, k, k)
    got = _block_bytes(*call)
    want = flash_attention_hbm_bytes(
        batch=c["b"], heads=c["h"], kv_heads=c["g"], q_len=c["sq"], kv_len=c["skv"],
        head_dim=c["d"], itemsize=q.dtype.itemsize, causal=c["causal"],
        block_q=c["block_q"], block_kv=c["block_kv"])
    assert got == [want["q"], want["k"], want["v"], want["o"]]
    assert sum(got) == want["total"]


def test_flash_attention_causal_skips_blocks_above_the_diagonal():
    """Square causal, 4x4 blocks: 1+2+3+4 = 10 (q, kv) block pairs computed, not 16; K copies:
    10 - 1 = 9, because q block 0's sweep ends on kv block 0 and q block 1's starts on it."""
    want = flash_attention_hbm_bytes(batch=1, heads=2, kv_heads=1, q_len=64, kv_len=64,
                                     head_dim=16, itemsize=4, causal=True, block_q=16, block_kv=16)
    assert want["k"] == 9 * 16 * 16 * 4 and want["kv_blocks_computed"] == 10
    # one kv block: it stays resident across all q blocks (revisiting), copied once
    one = flash_attention_hbm_bytes(batch=1, heads=1, kv_heads=1, q_len=64, kv_len=9,
                                    head_dim=16, itemsize=4, causal=False, block_q=16, block_kv=16)
    assert one["k"] == 9 * 16 * 4


@settings(max_examples=40, **SETTINGS)
@given(decode_cases())
def test_decode_traced_bytes_equal_closed_form(c):
    rng = np.random.default_rng(c["seed"])
    b, h, g, d, dtype = c["b"], c["h"], c["g"], c["d"], c["dtype"]
    q, kn = _z(b, h, d, dtype=dtype), _z(b, g, d, dtype=dtype)
    lengths = jnp.asarray(c["lengths"], jnp.int32)
    k = _z(b, g, c["l_max"], d, dtype=dtype)
    s = jnp.dtype(dtype).itemsize
    block_kv = c["m"] * c["page_size"]
    new_bytes = b * g * d * s
    for cache, kw in ((KVCache(k, k), dict(cache_len=c["l_max"])),
                      (_paged_copy(rng, k, k, c["page_size"]), dict(page_size=c["page_size"]))):
        fn = lambda q, kn, cache, lengths: decode_step(q, kn, kn, cache, lengths,
                                                       block_kv=block_kv, interpret=True)
        append, attend = _pallas_calls(fn, q, kn, cache, lengths)
        want = decode_hbm_bytes(lengths=c["lengths"], heads=h, kv_heads=g, head_dim=d,
                                itemsize=s, block_kv=block_kv, **kw)
        # append: k_new, v_new read; caches ANY (not copied); one (1, D) block per (b, g) written
        assert _block_bytes(*append) == [new_bytes, new_bytes, None, None, new_bytes, new_bytes]
        assert want["append_read"] == want["append_write"] == 2 * new_bytes
        got = _block_bytes(*attend)
        n_specs = 1 if "cache_len" in kw else c["m"]
        assert got[0] == want["q"] and got[-1] == want["o"]
        assert sum(got[1:1 + n_specs]) == want["k"] and sum(got[1 + n_specs:-1]) == want["v"]
        assert sum(got) == want["attention_total"]


@settings(derandomize=True, deadline=None, max_examples=10)
@given(lengths=st.lists(st.integers(1, 90), min_size=1, max_size=3), extra=st.integers(0, 20),
       splits=st.integers(2, 6), block_kv=st.sampled_from([8, 16]), dtype=st.sampled_from(["f32", "bf16"]),
       seed=st.integers(0, 2**16))
def test_split_kv_decode_matches_float64(lengths, extra, splits, block_kv, dtype, seed):
    """Flash-decoding (KV ranges in parallel, then a combine kernel) equals the float64 reference."""
    from kernels.decode import decode_attention

    b, h, g, d = len(lengths), 4, 2, 32
    cache_len = max(lengths) + extra
    rng = np.random.default_rng(seed)
    cast = jnp.float32 if dtype == "f32" else jnp.bfloat16
    q, k, v = (jnp.asarray(rng.standard_normal(s), jnp.float32).astype(cast)
               for s in ((b, h, d), (b, g, cache_len, d), (b, g, cache_len, d)))
    lens = jnp.asarray(lengths, jnp.int32)
    out = np.asarray(decode_attention(q, k, v, lens, block_kv=block_kv, splits=splits).astype(jnp.float32), np.float64)
    _assert_decode_matches_float64(out, q, k, v, lengths, dtype)


def _assert_decode_matches_float64(out, q, k, v, lengths, dtype: str) -> None:
    """Decode output (B, H, D) against the float64 softmax on the already-rounded q, k, v, with a tolerance
    of the query dtype scaled with the reduction length."""
    (b, h, d), g = q.shape, k.shape[1]
    q64, k64, v64 = (np.asarray(x.astype(jnp.float32), np.float64) for x in (q, k, v))
    group = h // g
    for bi, length in enumerate(lengths):
        for hi in range(h):
            scores = k64[bi, hi // group, :length] @ q64[bi, hi] / np.sqrt(d)
            p = np.exp(scores - scores.max())
            expected = (p / p.sum()) @ v64[bi, hi // group, :length]
            tol = (4e-6 if dtype == "f32" else 2e-2) * np.sqrt(length) * (np.abs(expected).max() + 1)
            assert np.abs(out[bi, hi] - expected).max() <= tol


@settings(derandomize=True, deadline=None, max_examples=8)
@given(lengths=st.lists(st.integers(1, 70), min_size=1, max_size=3), extra=st.integers(0, 20),
       splits=st.sampled_from([1, 3]), block_kv=st.sampled_from([8, 16]), q_dtype=st.sampled_from(["f32", "bf16"]),
       seed=st.integers(0, 2**16))
def test_fp8_cache_decode_matches_float64_on_the_stored_values(lengths, extra, splits, block_kv, q_dtype, seed):
    """A cache stored in fp8 (e4m3) is widened block by block to q's dtype: the result equals the float64
    reference on the fp8-rounded K and V, within the tolerance of q's dtype."""
    from kernels.decode import decode_attention

    b, h, g, d = len(lengths), 4, 2, 32
    cache_len = max(lengths) + extra
    rng = np.random.default_rng(seed)
    cast = jnp.float32 if q_dtype == "f32" else jnp.bfloat16
    q = jnp.asarray(rng.standard_normal((b, h, d)), jnp.float32).astype(cast)
    k, v = (jnp.asarray(rng.standard_normal((b, g, cache_len, d)), jnp.float32).astype(jnp.float8_e4m3fn)
            for _ in range(2))
    lens = jnp.asarray(lengths, jnp.int32)
    out = np.asarray(decode_attention(q, k, v, lens, block_kv=block_kv, splits=splits).astype(jnp.float32), np.float64)
    _assert_decode_matches_float64(out, q, k, v, lengths, q_dtype)
