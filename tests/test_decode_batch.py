"""Decode of a ragged batch: every row, at every step, equals that sequence's own full causal forward pass.

A tiny random-weight Llama (so the test is fast) is prefilled with right-padded prompts of
different lengths, then decoded token by token with the stacked KV cache; the expected logits
come from ``accelsim.models.reference.forward`` (plain jnp, no cache, no kernels). The decode
jaxpr must hold no array with two batch-sized axes: RoPE broadcast over the batch twice once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accelsim.models.config import LlamaConfig
from accelsim.models.llama import ModelBlocks, decode, prefill, stack_params
from accelsim.models.reference import forward
from kernels.decode import KVCache

# No size of the config equals the batch (3), so an axis of 3 can only be the batch.
TINY = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4,
                   num_kv_heads=2, head_dim=8, rope_theta=10000.0, rms_norm_eps=1e-5,
                   max_position_embeddings=128, tie_embeddings=True)
# Blocks that divide none of 32, 48, 64 or 96, and a decode block smaller than most prompts.
BLOCKS = ModelBlocks(qkv=(8, 24, 16, 1), o=(8, 24, 24, 1), gate_up=(8, 40, 24, 1), down=(8, 24, 40, 1),
                     lm_head=(8, 24, 24, 1), attention=(4, 4), decode_kv=4)
PROMPT_LENS = (5, 9, 2)
STEPS = 4


def _random_params(config: LlamaConfig, seed: int = 0) -> dict:
    """Weights in ``accelsim.models.weights``' per-layer layout, scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    c = config

    def w(*shape: int) -> jax.Array:
        return jnp.asarray(rng.standard_normal(shape) / np.sqrt(shape[0]), jnp.float32)

    def norm() -> jax.Array:
        return jnp.asarray(1 + 0.1 * rng.standard_normal(c.hidden_size), jnp.float32)

    layers = [{"attn_norm": norm(), "wq": w(c.hidden_size, c.q_size), "wk": w(c.hidden_size, c.kv_size),
               "wv": w(c.hidden_size, c.kv_size), "wo": w(c.q_size, c.hidden_size), "mlp_norm": norm(),
               "w_gate": w(c.hidden_size, c.intermediate_size), "w_up": w(c.hidden_size, c.intermediate_size),
               "w_down": w(c.intermediate_size, c.hidden_size)} for _ in range(c.num_layers)]
    embed = jnp.asarray(rng.standard_normal((c.vocab_size, c.hidden_size)), jnp.float32)
    return {"embed": embed, "layers": layers, "final_norm": norm()}


@pytest.fixture(scope="module")
def model():
    raw = _random_params(TINY)
    rows = np.random.default_rng(1).integers(0, TINY.vocab_size, (len(PROMPT_LENS), max(PROMPT_LENS) + STEPS))
    return raw, stack_params(raw, TINY), rows.astype(np.int32)


def _expected_logits(raw: dict, rows: np.ndarray) -> np.ndarray:
    """Reference logits at every position of every row's whole sequence (prompt, then the decoded tokens).

    The rows differ in how many of their tokens are real; with a causal mask, positions after
    ``n - 1`` cannot change position ``n - 1``'s logits, so one padded call serves all rows."""
    return np.asarray(jax.jit(forward, static_argnums=1)(raw, TINY, jnp.asarray(rows)))


def _close(ours: np.ndarray, expected: np.ndarray) -> bool:
    return float(np.abs(ours - expected).max()) <= 1e-4 * float(np.abs(expected).max())


@pytest.mark.parametrize("splits", [1, 2])
def test_ragged_batch_decode_equals_each_sequences_full_forward(model, splits):
    raw, params, rows = model
    blocks = dataclasses.replace(BLOCKS, decode_splits=splits)
    expected = _expected_logits(raw, rows)
    lens = np.asarray(PROMPT_LENS, np.int32)
    batch, cache_len = len(lens), rows.shape[1]
    # Right-padded prompts: each row's positions < its length see only its own prompt (causal), and
    # the cache rows past it are overwritten by decode before its lengths reach them.
    prompts = np.where(np.arange(max(lens))[None, :] < lens[:, None], rows[:, :max(lens)], 0)
    run_prefill = jax.jit(prefill, static_argnames=("config", "blocks", "cache_len", "all_logits"))
    logits, cache = run_prefill(params, jnp.asarray(prompts), config=TINY, blocks=blocks, cache_len=cache_len,
                                all_logits=True)
    bi = np.arange(batch)
    assert _close(np.asarray(logits)[bi, lens - 1], expected[bi, lens - 1])
    step = jax.jit(decode, static_argnames=("config", "blocks"), donate_argnames=("cache",))
    for t in range(STEPS):
        positions = lens + t  # where each row's new token goes
        logits, cache = step(params, jnp.asarray(rows[bi, positions]), cache, jnp.asarray(positions + 1),
                             config=TINY, blocks=blocks)
        for b in bi:
            assert _close(np.asarray(logits[b]), expected[b, positions[b]]), f"row {b} step {t}"


def _avals(jaxpr) -> Iterator[jax.core.AbstractValue]:
    """Every variable's abstract value in a jaxpr and all the jaxprs nested in its equations."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)  # ClosedJaxpr or Jaxpr
    for var in [*jaxpr.invars, *jaxpr.constvars]:
        yield var.aval
    for eqn in jaxpr.eqns:
        yield from (v.aval for v in eqn.outvars)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    yield from _avals(sub)


def test_decode_makes_no_batch_by_batch_array(model):
    _, params, _ = model
    batch, cache_len = len(PROMPT_LENS), 16
    kv = jnp.zeros((TINY.num_layers, batch, TINY.num_kv_heads, cache_len, TINY.head_dim), jnp.float32)
    lengths = jnp.asarray(PROMPT_LENS, jnp.int32) + 1
    closed = jax.make_jaxpr(lambda p, t, c, n: decode(p, t, c, n, TINY, BLOCKS))(
        params, jnp.zeros(batch, jnp.int32), KVCache(kv, kv), lengths)
    shapes = [tuple(a.shape) for a in _avals(closed) if hasattr(a, "shape")]
    assert any(s[:1] == (batch,) for s in shapes)  # the walk does see batch-shaped values
    bad = sorted({s for s in shapes if s.count(batch) > 1})
    assert not bad, f"decode builds arrays with two batch axes: {bad}"
