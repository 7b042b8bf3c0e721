"""Tensor-parallel execution on 3 XLA host devices (tests/conftest.py asks for them) equals one device.

A tiny random-weight Llama with 9 query and 3 KV heads (SmolLM2-135M's head counts) runs prefill and
one decode step over a 3-device mesh and on one device; its traced collectives are two all-reduces of
the (tokens, hidden) activations per layer; each collective kind is priced by its ring formula,
worked out here by hand; and `accelsim run --tensor-parallel 3` writes the greedy text one device does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from accelsim.chips import load_chip
from accelsim.chips.spec import Link
from accelsim.models.config import LlamaConfig
from accelsim.models.llama import ModelBlocks, decode, prefill, stack_params
from accelsim.models.sharding import (local_config, shard_params, sharded_decode, sharded_prefill,
                                      tensor_parallel_mesh)
from accelsim.trace.price import price_workload
from accelsim.trace.workload import trace_workload
from kernels.decode import KVCache
from tests.test_decode_batch import _random_params

DEVICES = 3
CONFIG = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=9,
                     num_kv_heads=3, head_dim=8, rope_theta=10000.0, rms_norm_eps=1e-5,
                     max_position_embeddings=128, tie_embeddings=True)
# K blocks that do not line up with the shards (o_proj K: 72 whole, 24 per device; down K: 48, 16), so the
# partial sums are added in another order than one device adds them.
BLOCKS = ModelBlocks(qkv=(8, 24, 16, 1), o=(8, 24, 16, 1), gate_up=(8, 16, 16, 1), down=(8, 24, 24, 1),
                     lm_head=(8, 24, 24, 1), attention=(4, 4), decode_kv=4)
BATCH, SEQ, CACHE_LEN = 2, 6, 10
F32_TOLERANCE = 1e-4  # of max |logit|


@pytest.fixture(scope="module")
def model():
    mesh = tensor_parallel_mesh(DEVICES)
    params = stack_params(_random_params(CONFIG), CONFIG)
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, CONFIG.vocab_size, (BATCH, SEQ)), jnp.int32)
    return mesh, params, shard_params(params, CONFIG, mesh), tokens


def _close(sharded: jax.Array, one: jax.Array) -> float:
    return float(np.abs(np.asarray(sharded) - np.asarray(one)).max() / np.abs(np.asarray(one)).max())


def test_local_config_is_one_devices_share():
    local = local_config(CONFIG, DEVICES)
    assert (local.num_heads, local.num_kv_heads, local.intermediate_size, local.hidden_size) == (3, 1, 16, 32)


def test_sharded_prefill_and_decode_equal_one_device(model):
    mesh, params, sharded, tokens = model
    one_logits, one_cache = jax.jit(prefill, static_argnums=(2, 3, 4))(params, tokens, CONFIG, BLOCKS, CACHE_LEN)
    tp_logits, tp_cache = jax.jit(lambda p, t: sharded_prefill(p, t, CONFIG, BLOCKS, CACHE_LEN, mesh=mesh))(
        sharded, tokens)
    assert tp_cache.k.sharding.spec == P(None, None, "tp") and tp_cache.k.shape == one_cache.k.shape
    assert _close(tp_logits, one_logits) < F32_TOLERANCE
    assert _close(tp_cache.k, one_cache.k) < F32_TOLERANCE and _close(tp_cache.v, one_cache.v) < F32_TOLERANCE

    token = jnp.argmax(one_logits, -1).astype(jnp.int32)
    lengths = jnp.full((BATCH,), SEQ + 1, jnp.int32)
    one_step, _ = jax.jit(decode, static_argnums=(4, 5))(params, token, one_cache, lengths, CONFIG, BLOCKS)
    tp_step, _ = jax.jit(lambda p, t, c, n: sharded_decode(p, t, c, n, CONFIG, BLOCKS, mesh=mesh))(
        sharded, token, tp_cache, lengths)
    assert _close(tp_step, one_step) < F32_TOLERANCE


def test_collectives_are_two_all_reduces_of_the_activations_per_layer(model):
    mesh, _, sharded, tokens = model
    half = jax.ShapeDtypeStruct((CONFIG.num_layers, BATCH, CONFIG.num_kv_heads, CACHE_LEN, CONFIG.head_dim),
                                jnp.float32)
    phases = {
        "prefill": (trace_workload(lambda p, t: sharded_prefill(p, t, CONFIG, BLOCKS, CACHE_LEN, mesh=mesh),
                                   sharded, tokens), BATCH * SEQ),
        "decode": (trace_workload(lambda p, t, c, n: sharded_decode(p, t, c, n, CONFIG, BLOCKS, mesh=mesh),
                                  sharded, tokens[:, 0], KVCache(half, half), np.full(BATCH, SEQ + 1, np.int32)),
                   BATCH),
    }
    for phase, (trace, rows) in phases.items():
        assert sum(c.weight for c in trace.collectives) == 2 * CONFIG.num_layers, phase
        for c in trace.collectives:
            assert (c.algorithm, c.devices, c.bytes) == ("all_reduce", DEVICES, rows * CONFIG.hidden_size * 4), phase
        # the kernels run on one device's share: qkv's local width (3 + 2 * 1) * 8 = 40 is 2 blocks of 24, not 5
        assert [k.grid[1] for k in trace.kernels if "/qkv/" in k.scope] == [2], phase


def test_each_collective_is_priced_by_its_ring_formula_without_a_topology():
    mesh = tensor_parallel_mesh(DEVICES)

    def body(x):  # x: this device's (2, 4) f32 block, 32 bytes; the whole (6, 4) array is 96 bytes
        gathered = jax.lax.all_gather(x, "tp", tiled=True)
        scattered = jax.lax.psum_scatter(gathered, "tp", tiled=True)
        shifted = jax.lax.ppermute(x, "tp", [(0, 1), (1, 2), (2, 0)])
        return jax.lax.psum(x, "tp") + scattered + shifted, jax.lax.all_to_all(gathered, "tp", 0, 0, tiled=True)

    fn = jax.shard_map(body, mesh=mesh, in_specs=P("tp"), out_specs=(P("tp"), P("tp")))
    trace = trace_workload(fn, jnp.ones((6, 4), jnp.float32))
    chip = dataclasses.replace(load_chip("h100-sxm"), links=(Link("test-link", 1e9, 2, "test", latency_s=1e-6),),
                               scale_up=None)  # no topology: rings over the 3 devices
    bandwidth, hop = 2e9, 1e-6
    expected = {  # algorithm: (bytes per device, bytes sent, seconds) for n = 3
        "all_gather": (96, 2 / 3 * 96, 2 / 3 * 96 / bandwidth + 2 * hop),
        "reduce_scatter": (96, 2 / 3 * 96, 2 / 3 * 96 / bandwidth + 2 * hop),
        "ppermute": (32, 32, 32 / bandwidth + hop),
        "all_reduce": (32, 2 * 2 / 3 * 32, 2 * 2 / 3 * 32 / bandwidth + 4 * hop),
        "all_to_all": (96, 2 / 3 * 96, 2 / 3 * 96 / bandwidth + hop),
    }
    assert sorted(c.algorithm for c in trace.collectives) == sorted(expected)
    priced = [c for c in price_workload(trace, chip) if c.kind == "collective"]
    for record, cost in zip(trace.collectives, priced):
        nbytes, sent, seconds = expected[record.algorithm]
        assert record.bytes == nbytes and record.devices == DEVICES, record
        assert cost.bound == "interconnect" and cost.bytes_per_level == {"test-link": pytest.approx(sent)}
        assert cost.time_s == pytest.approx(seconds, rel=1e-12), record.algorithm


def test_run_tensor_parallel_3_writes_the_text_of_one_device():
    """The command creates its own host devices, so it runs in a fresh process without XLA_FLAGS."""
    script = (
        "import contextlib, io, json, jax\n"
        "from accelsim.cli import main\n"
        "texts = []\n"
        "for tp in ('3', '1'):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        code = main(['run', '--raw', '--prompt', 'The capital of France is', '--max-new-tokens', '5',\n"
        "                     '--json', '--chip', 'h100-sxm', '--tensor-parallel', tp])\n"
        "    assert code == 0, code\n"
        "    texts.append(json.loads(out.getvalue())['text'])\n"
        "print(json.dumps({'texts': texts, 'devices': jax.device_count()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == DEVICES
    three, one = result["texts"]
    assert one.strip() and three == one
