"""Every kernel's GPU form lowers to Triton for every plan the GPU presets choose, on a CPU-only host.

``jax.export`` with ``platforms=["cuda"]`` runs Pallas's Triton lowering (block shapes, power-of-two
tensors, masked loads, scalar reads) without a GPU; nothing is executed. A plan that cannot lower fails
its test. What export cannot check is Triton's own compile to PTX (register and shared-memory
allocation), which happens in XLA on a GPU.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accelsim.chips import load_chip
from accelsim.models.config import load_config
from accelsim.models.llama import abstract_params, decode, prefill
from accelsim.models.plans import phase_blocks
from accelsim.ops import all_ops
from kernels.backend import lowering_for
from kernels.decode import KVCache, PagedKVCache, decode_step

GPU_CHIPS = ("h100-sxm", "h200", "b200", "a100-80gb")
TRITON = "__gpu$xla.gpu.triton"
_CHIPS = {name: load_chip(name) for name in GPU_CHIPS}


def _pallas_calls(jaxpr) -> list:
    """Every pallas_call equation in ``jaxpr`` and its sub-jaxprs (jit, scan bodies)."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "pallas_call":
            found.append(eqn)
            continue
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", None)
                if inner is not None:
                    found += _pallas_calls(getattr(inner, "jaxpr", inner))
    return found


def export_for_gpu(fn, *args) -> tuple[list[str], list]:
    """Lower ``fn(*args)`` (arrays or ShapeDtypeStructs) for CUDA with every kernel in its GPU form;
    returns the module's custom-call targets and the pallas_call equations that produced them."""
    avals = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), args)
    with lowering_for("gpu"):
        calls = _pallas_calls(jax.make_jaxpr(fn)(*avals).jaxpr)
        exported = jax.export.export(jax.jit(fn), platforms=["cuda"],
                                     disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(TRITON)])(*avals)
    return re.findall(r"custom_call @([\w$.]+)", exported.mlir_module()), calls


def assert_all_triton(fn, *args) -> None:
    targets, calls = export_for_gpu(fn, *args)
    assert calls, "no Pallas kernel in the lowered function"
    for eqn in calls:
        assert not eqn.params["interpret"], f"{eqn.params['name']} ran in interpret mode"
        assert type(eqn.params["compiler_params"]).__module__.startswith("jax._src.pallas.triton"), \
            f"{eqn.params['name']} does not lower through Triton: {eqn.params['compiler_params']!r}"
    assert TRITON in targets and not [t for t in targets if "mosaic" in t], targets


def _op_cases() -> list:
    """(op, shape, dtype, blocks) for every distinct plan the GPU presets choose on the ops' suite shapes
    in bf16, and in f32 on the H100."""
    cases, seen = [], set()
    for op in all_ops():
        for shape in op.suite_shapes:
            for dtype, chips in (("bf16", GPU_CHIPS), ("f32", GPU_CHIPS[:1])):  # f32 on one chip: planning is slow
                for chip in map(_CHIPS.get, chips):
                    blocks = op.plan(shape, chip, dtype).blocks
                    key = (op.name, shape, dtype, tuple(sorted(blocks.items())))
                    if key not in seen:
                        seen.add(key)
                        cases.append(pytest.param(op, shape, dtype, blocks, id=f"{op.name}-{shape}-{dtype}-{blocks}"))
    return cases


@pytest.mark.parametrize("op,shape,dtype,blocks", _op_cases())
def test_op_plan_lowers_to_triton(op, shape, dtype, blocks):
    built = []
    args = jax.eval_shape(lambda: built.append(op.build(shape, dtype, blocks)) or built[-1][1])
    assert_all_triton(built[0][0], *args)


@pytest.mark.parametrize("chip", GPU_CHIPS)
def test_smollm2_phases_lower_to_triton(chip):
    config = load_config("smollm2-135m")
    batch, prompt_len, cache_len = 1, 64, 128
    prefill_blocks, decode_blocks = phase_blocks(config, _CHIPS[chip], "bf16", batch, prompt_len, cache_len)
    params = abstract_params(config, jnp.bfloat16)
    tokens = jax.ShapeDtypeStruct((batch, prompt_len), jnp.int32)
    assert_all_triton(lambda p, t: prefill(p, t, config, prefill_blocks, cache_len), params, tokens)
    kv = jax.ShapeDtypeStruct((config.num_layers, batch, config.num_kv_heads, cache_len, config.head_dim),
                              jnp.bfloat16)
    lengths = jax.ShapeDtypeStruct((batch,), jnp.int32)
    assert_all_triton(lambda p, t, c, n: decode(p, t, c, n, config, decode_blocks), params,
                      jax.ShapeDtypeStruct((batch,), jnp.int32), KVCache(kv, kv), lengths)


def test_paged_decode_lowers_to_triton():
    """Paged caches are no op's plan yet: one paged decode step (append + attention), bf16, GQA group 3."""
    b, h, g, d, page_size, pages, max_pages = 2, 9, 3, 64, 16, 12, 6
    table = np.arange(b * max_pages, dtype=np.int32).reshape(b, max_pages) % pages
    q = jax.ShapeDtypeStruct((b, h, d), jnp.bfloat16)
    new = jax.ShapeDtypeStruct((b, g, d), jnp.bfloat16)
    store = jax.ShapeDtypeStruct((pages, g, page_size, d), jnp.bfloat16)
    lengths = jax.ShapeDtypeStruct((b,), jnp.int32)
    assert_all_triton(lambda q, kn, vn, k, v, t, n: decode_step(q, kn, vn, PagedKVCache(k, v, t), n,
                                                                block_kv=2 * page_size)[0],
                      q, new, new, store, store, jnp.asarray(table), lengths)


def test_grid_form_is_not_triton():
    """The check can fail: the grid (interpret) form names no Triton compiler params."""
    from kernels.matmul import matmul
    a = jax.ShapeDtypeStruct((32, 32), jnp.float32)
    with pytest.raises(AssertionError):
        assert_all_triton(lambda x, y: matmul(x, y, bm=16, bn=16, bk=16, interpret=True), a, a)


def _normal(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("m,k,n,splits", [(37, 45, 29, 1), (37, 100, 29, 3)])
def test_matmul_gpu_form_in_interpret_mode(m, k, n, splits):
    """The Triton form's masks and split loop, executed in interpret mode against float64."""
    from kernels.matmul_gpu import matmul_gpu
    rng = np.random.default_rng(m + k + n + splits)
    a, b = _normal(rng, m, k), _normal(rng, k, n)
    out = matmul_gpu(a, b, bm=16, bn=16, bk=16, splits=splits, out_dtype=jnp.float32, interpret=True)
    np.testing.assert_allclose(np.asarray(out), np.asarray(a, np.float64) @ np.asarray(b, np.float64), atol=1e-4)


@pytest.mark.parametrize("splits,layer", [(1, None), (3, 1)])
def test_contiguous_decode_gpu_form_in_interpret_mode(splits, layer):
    """Append + attention (split-KV, stacked) in the Triton form vs the plain-jnp decode step; GQA group 3."""
    from kernels import decode_gpu
    from kernels.decode import decode_step_reference
    rng = np.random.default_rng(splits)
    b, h, g, cap, d = 3, 6, 2, 40, 16
    q, kn, vn = _normal(rng, b, h, d), _normal(rng, b, g, d), _normal(rng, b, g, d)
    lead = () if layer is None else (2,)
    cache = KVCache(_normal(rng, *lead, b, g, cap, d), _normal(rng, *lead, b, g, cap, d))
    lengths = jnp.asarray([1, 17, 40], jnp.int32)
    ref_out, ref_cache = decode_step_reference(q, kn, vn, cache, lengths, layer=layer)
    lay = None if layer is None else jnp.asarray([layer], jnp.int32)
    k, v = decode_gpu.append_gpu(kn, vn, cache.k, cache.v, lengths, None, lay, interpret=True)
    out = decode_gpu.contiguous_attention_gpu(q, k, v, lengths, lay, block_kv=16, splits=splits, interpret=True)
    np.testing.assert_array_equal(np.asarray(k), np.asarray(ref_cache.k))
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref_out), atol=2e-6)


def test_paged_decode_gpu_form_in_interpret_mode():
    from kernels import decode_gpu
    from kernels.decode import decode_step_reference
    rng = np.random.default_rng(7)
    b, h, g, d, page_size, pages, max_pages = 3, 6, 2, 16, 8, 20, 5
    q, kn, vn = _normal(rng, b, h, d), _normal(rng, b, g, d), _normal(rng, b, g, d)
    table = jnp.asarray(rng.permutation(pages)[:b * max_pages].reshape(b, max_pages), jnp.int32)
    cache = PagedKVCache(_normal(rng, pages, g, page_size, d), _normal(rng, pages, g, page_size, d), table)
    lengths = jnp.asarray([1, 17, 40], jnp.int32)
    ref_out, ref_cache = decode_step_reference(q, kn, vn, cache, lengths)
    k, v = decode_gpu.append_gpu(kn, vn, cache.k_pages, cache.v_pages, lengths, table, None, interpret=True)
    out = decode_gpu.paged_attention_gpu(q, k, v, table, lengths, None, interpret=True)
    np.testing.assert_array_equal(np.asarray(v), np.asarray(ref_cache.v_pages))
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref_out), atol=2e-6)
