"""Attention and decode tiling models: traced kernel counts == closed form on every chip; FLOPs vs roofline."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.experimental import roofline

from accelsim.chips import load_chip, preset_names
from accelsim.errors import AccelsimError
from accelsim.tiling.attention import attention_flops, plan_attention, plan_unfused_attention
from accelsim.tiling.decode import plan_decode
from accelsim.trace.price import price_workload
from accelsim.trace.workload import trace_workload
from kernels.attention import attention_reference, flash_attention, flash_attention_hbm_bytes
from kernels.decode import KVCache, PagedKVCache, decode_step

PRESETS = [n for n in preset_names() if n != "host"]


def _summed(costs):
    levels, cycles, exps = {}, 0.0, 0.0
    for cost in costs:
        for name, value in cost.bytes_per_level.items():
            levels[name] = levels.get(name, 0.0) + value
        cycles += cost.total_cycles
        exps += cost.exps
    return levels, cycles, exps


heads_and_groups = st.sampled_from([(1, 1), (2, 1), (4, 2), (4, 4), (8, 2)])


@settings(derandomize=True, deadline=None, max_examples=30)
@given(batch=st.integers(1, 2), hg=heads_and_groups, q_len=st.integers(1, 300), kv_len=st.integers(1, 300),
       head_dim=st.sampled_from([64, 128]), causal=st.booleans(), chip_name=st.sampled_from(PRESETS))
def test_flash_counts_equal_closed_form(batch, hg, q_len, kv_len, head_dim, causal, chip_name):
    heads, kv_heads = hg
    chip = load_chip(chip_name)
    plan = plan_attention(batch, heads, kv_heads, q_len, kv_len, head_dim, causal, chip, "bf16")
    q = jax.ShapeDtypeStruct((batch, heads, q_len, head_dim), jnp.bfloat16)
    kv = jax.ShapeDtypeStruct((batch, kv_heads, kv_len, head_dim), jnp.bfloat16)
    trace = trace_workload(lambda q, k, v: flash_attention(q, k, v, causal=causal, **plan.blocks), q, kv, kv)
    levels, cycles, exps = _summed(price_workload(trace, chip))
    assert levels == plan.bytes_per_level
    assert cycles == pytest.approx(plan.total_cycles, rel=1e-12)
    assert exps == plan.other_ops["exp_executed"]
    assert trace.kernels[0].flops == plan.executed_flops
    # and the kernel module's own byte formula agrees with the tiling model's copies
    own = flash_attention_hbm_bytes(batch=batch, heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len,
                                    head_dim=head_dim, itemsize=2, causal=causal, **plan.blocks)
    assert own["total"] == trace.kernels[0].main_bytes


@settings(derandomize=True, deadline=None, max_examples=25)
@given(lengths=st.lists(st.integers(1, 200), min_size=1, max_size=4), extra=st.integers(0, 60),
       hg=heads_and_groups, head_dim=st.sampled_from([64, 128]), paged=st.booleans(),
       chip_name=st.sampled_from(PRESETS))
def test_decode_counts_equal_closed_form(lengths, extra, hg, head_dim, paged, chip_name):
    heads, kv_heads = hg
    chip = load_chip(chip_name)
    batch, page_size = len(lengths), 16 if paged else None
    cache_len = max(lengths) + extra
    if paged:
        cache_len = -(-cache_len // page_size) * page_size
    plan = plan_decode(lengths, heads, kv_heads, head_dim, cache_len, chip, "bf16", page_size=page_size)
    bf16 = jnp.bfloat16
    q, new = jnp.zeros((batch, heads, head_dim), bf16), jnp.zeros((batch, kv_heads, head_dim), bf16)
    if paged:
        pages = cache_len // page_size
        table = jnp.arange(batch * pages, dtype=jnp.int32).reshape(batch, pages)[:, ::-1]
        store = jnp.zeros((batch * pages, kv_heads, page_size, head_dim), bf16)
        cache = PagedKVCache(store, store, table)
    else:
        store = jnp.zeros((batch, kv_heads, cache_len, head_dim), bf16)
        cache = KVCache(store, store)
    lens = jnp.asarray(lengths, jnp.int32)
    trace = trace_workload(lambda q, k, v, c, l: decode_step(q, k, v, c, l, **plan.blocks), q, new, new, cache, lens)
    levels, cycles, exps = _summed(price_workload(trace, chip))
    assert levels == plan.bytes_per_level
    assert cycles == pytest.approx(plan.total_cycles, rel=1e-12)
    assert exps == plan.other_ops["exp_executed"]


def test_decode_kv_bytes_are_the_whole_cache_once():
    plan = plan_decode([32768], 64, 8, 128, 32768, load_chip("h100-sxm"), "bf16")
    assert plan.other_ops["kv_cache_read_bytes"] == 2 * 32768 * 8 * 128 * 2


@pytest.mark.parametrize("causal", [False, True])
def test_flops_match_roofline_on_loop_free_reference(causal):
    b, h, g, s, d = 1, 4, 2, 70, 64
    q, kv = jnp.zeros((b, h, s, d), jnp.float32), jnp.zeros((b, g, s, d), jnp.float32)
    _, result = roofline.roofline(lambda q, k, v: attention_reference(q, k, v, causal=causal))(q, kv, kv)
    ours, _ = attention_flops(b, h, s, s, d, causal=False)  # the reference computes every score, masked or not
    assert result.flops == ours
    if causal:
        assert attention_flops(b, h, s, s, d, causal=True)[0] == 4 * b * h * d * s * (s + 1) / 2


def test_flash_moves_fewer_bytes_than_unfused_when_scores_spill():
    chip = load_chip("h100-sxm")
    flash = plan_attention(1, 32, 8, 4096, 4096, 128, True, chip)
    naive = plan_unfused_attention(1, 32, 8, 4096, 4096, 128, True, chip)
    assert naive.main_bytes > 10 * flash.main_bytes
    assert naive.time_s > flash.time_s


@pytest.mark.parametrize("call, message", [
    (lambda c: plan_attention(1, 6, 4, 16, 16, 64, False, c), "must divide"),
    (lambda c: plan_decode([100], 8, 8, 64, 50, c), "longer than the cache"),
    (lambda c: plan_decode([10], 8, 8, 64, 64, c, page_size=128), "page size"),
    (lambda c: plan_attention(1, 8, 8, 0, 16, 64, False, c), "positive integer"),
])
def test_bad_attention_input(call, message):
    with pytest.raises(AccelsimError, match=message):
        call(load_chip("tpu-v5e"))
