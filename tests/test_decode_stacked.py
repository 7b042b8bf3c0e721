"""The decode kernels on caches stacked over layers: a step with ``layer=i`` equals the plain-jnp step
on layer i and leaves every other layer as it was; copies equal the per-layer closed form; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accelsim.errors import AccelsimError
from kernels.decode import KVCache, PagedKVCache, decode_hbm_bytes, decode_step, decode_step_reference
from tests.test_attention_kernels import _block_bytes, _pallas_calls

LAYERS, B, H, G, D, L_MAX, PAGE = 3, 3, 4, 2, 16, 16, 4
LENGTHS = np.array([5, 16, 1], np.int32)  # ragged: mid-block, a full cache, one position
FORMS = {"contiguous": dict(block_kv=8), "split": dict(block_kv=4, splits=3), "paged": dict(block_kv=2 * PAGE)}


def _case(form: str, dtype=jnp.float32):
    rng = np.random.default_rng(len(form))
    draw = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32).astype(dtype)  # noqa: E731
    q, k_new, v_new = draw(B, H, D), draw(B, G, D), draw(B, G, D)
    if form != "paged":
        return q, k_new, v_new, KVCache(draw(LAYERS, B, G, L_MAX, D), draw(LAYERS, B, G, L_MAX, D))
    max_pages = L_MAX // PAGE
    num_pages = B * max_pages + 2  # two pages no sequence owns
    table = jnp.asarray(rng.permutation(num_pages)[:B * max_pages].reshape(B, max_pages), jnp.int32)
    pages = lambda: draw(LAYERS, num_pages, G, PAGE, D)  # noqa: E731
    return q, k_new, v_new, PagedKVCache(pages(), pages(), table)


@pytest.mark.parametrize("form", list(FORMS))
def test_stacked_step_equals_reference_on_its_layer_only(form):
    q, k_new, v_new, cache = _case(form)
    lengths = jnp.asarray(LENGTHS)
    step = jax.jit(lambda c, i: decode_step(q, k_new, v_new, c, lengths, layer=i, interpret=True, **FORMS[form]))
    for layer in (0, LAYERS - 1):
        out, new = step(cache, jnp.int32(layer))
        want, want_cache = decode_step_reference(q, k_new, v_new, cache, lengths, layer=layer)
        np.testing.assert_allclose(np.asarray(out), np.asarray(want), atol=1e-5, err_msg=f"layer {layer}")
        for got, expected, before in zip(new, want_cache, cache):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
            changed = [i for i in range(LAYERS) if not np.array_equal(np.asarray(got[i]), np.asarray(before[i]))]
            if got.ndim == 5:
                assert changed == [layer]


@pytest.mark.parametrize("form", ["contiguous", "paged"])
def test_stacked_copies_equal_the_per_layer_closed_form(form):
    q, k_new, v_new, cache = _case(form)
    block_kv = FORMS[form]["block_kv"]
    fn = lambda q, kn, vn, c, n, i: decode_step(q, kn, vn, c, n, block_kv=block_kv, layer=i,  # noqa: E731
                                                interpret=True)
    append, attend = _pallas_calls(fn, q, k_new, v_new, cache, jnp.asarray(LENGTHS), jnp.int32(1))
    geometry = dict(cache_len=L_MAX) if form == "contiguous" else dict(page_size=PAGE)
    want = decode_hbm_bytes(lengths=LENGTHS, heads=H, kv_heads=G, head_dim=D, itemsize=4, block_kv=block_kv,
                            **geometry)
    new = B * G * D * 4
    assert _block_bytes(*append) == [new, new, None, None, new, new]  # the stacked caches stay in ANY
    assert sum(_block_bytes(*attend)) == want["attention_total"]


def _bad_layer_cases():
    q, k_new, v_new, cache = _case("contiguous")
    one_layer = KVCache(cache.k[0], cache.v[0])
    return {
        "outside the stacked cache's 3 layers": (cache, 3),
        "layer must be one integer": (cache, jnp.asarray([0, 1], jnp.int32)),
        "must be 5-D": (one_layer, 0),
    }


@pytest.mark.parametrize("needle", list(_bad_layer_cases()))
def test_stacked_bad_input(needle):
    q, k_new, v_new, _ = _case("contiguous")
    cache, layer = _bad_layer_cases()[needle]
    with pytest.raises(AccelsimError, match=needle) as e:
        decode_step(q, k_new, v_new, cache, jnp.asarray(LENGTHS), block_kv=8, layer=layer)
    assert "\n" not in str(e.value)
