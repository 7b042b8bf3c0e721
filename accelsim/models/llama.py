"""A Llama-family transformer built only from the project's kernels: prefill, decode step, generate.

Every matmul runs in ``kernels.matmul``, prefill attention in ``kernels.attention.flash_attention``
and decode attention (with the KV-cache append) in ``kernels.decode.decode_step``, each with the
block sizes of a ``ModelBlocks`` chosen by the tiling model for one chip. RMSNorm, RoPE, SiLU and
the residual adds are plain jnp (XLA fuses them; the trace counts their bytes).

Layers run under ``lax.scan`` over stacked weights, so one compiled layer body serves all layers
and a trace counts it once per layer. Weight layout: ``x @ W`` with ``W`` (in, out); Q, K and V are
one fused projection ``wqkv`` (D, (H + 2G) * hd), gate and up one ``w_gate_up`` (D, 2F).

``tp_axis`` names a mesh axis when the model runs tensor-parallel inside ``jax.shard_map``
(``accelsim.models.sharding``): the config and weights are then one device's share, and the two
row-parallel products (``o_proj``, ``down``) are summed over that axis with ``psum``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from accelsim.models.config import LlamaConfig
from accelsim.models.reference import apply_rope, rms_norm, rope_tables
from kernels.attention import flash_attention
from kernels.decode import KVCache, decode_step
from kernels.matmul import matmul

MatmulBlocks = tuple[int, int, int, int]  # (bm, bn, bk, splits of K)


@dataclass(frozen=True)
class ModelBlocks:
    """Kernel block sizes for one phase of one model on one chip (hashable: a jit static argument)."""

    qkv: MatmulBlocks
    o: MatmulBlocks
    gate_up: MatmulBlocks
    down: MatmulBlocks
    lm_head: MatmulBlocks
    attention: tuple[int, int] = (64, 64)  # prefill (block_q, block_kv)
    decode_kv: int = 64                    # decode block_kv
    decode_splits: int = 1                 # decode KV ranges computed in parallel (flash-decoding)
    router: MatmulBlocks | None = None           # MoE only
    experts_touched: int = 0                # MoE: experts a step's tokens reach
    expert_capacity: int = 0                # MoE: tokens each touched expert processes
    low_precision_compute: bool = False     # matmuls multiply in the weight dtype (W8A8, FP8, FP4), not widened


def stack_params(params: dict, config: LlamaConfig, dtype: Any = jnp.float32) -> dict:
    """The per-layer list from ``accelsim.models.weights`` as stacked, fused arrays for ``lax.scan``."""
    layers = params["layers"]

    def stacked(fn: Callable[[dict], Any]) -> jax.Array:
        return jnp.stack([jnp.asarray(fn(layer), dtype) for layer in layers])

    out = {
        "embed": jnp.asarray(params["embed"], dtype),
        "final_norm": jnp.asarray(params["final_norm"], dtype),
        "layers": {
            "attn_norm": stacked(lambda l: l["attn_norm"]),
            "wqkv": stacked(lambda l: jnp.concatenate([l["wq"], l["wk"], l["wv"]], axis=1)),
            "wo": stacked(lambda l: l["wo"]),
            "mlp_norm": stacked(lambda l: l["mlp_norm"]),
            "w_gate_up": stacked(lambda l: jnp.concatenate([l["w_gate"], l["w_up"]], axis=1)),
            "w_down": stacked(lambda l: l["w_down"]),
        },
    }
    head = params["embed"].T if config.tie_embeddings else params["lm_head"]
    out["lm_head"] = jnp.asarray(head, dtype)
    return out


def abstract_params(config: LlamaConfig, weight_dtype: Any, act_dtype: Any = jnp.bfloat16) -> dict:
    """Shapes and dtypes of ``stack_params`` output (and of MoE experts), with no memory allocated."""
    c, L = config, config.num_layers
    w = lambda *shape: jax.ShapeDtypeStruct(shape, weight_dtype)  # noqa: E731
    a = lambda *shape: jax.ShapeDtypeStruct(shape, act_dtype)  # noqa: E731
    layers = {"attn_norm": a(L, c.hidden_size), "wqkv": w(L, c.hidden_size, c.q_size + 2 * c.kv_size),
              "wo": w(L, c.q_size, c.hidden_size), "mlp_norm": a(L, c.hidden_size)}
    if c.is_moe:
        layers["w_router"] = w(L, c.hidden_size, c.num_experts)
        layers["w_gate_up"] = w(L, c.num_experts, c.hidden_size, 2 * c.intermediate_size)
        layers["w_down"] = w(L, c.num_experts, c.intermediate_size, c.hidden_size)
    else:
        layers["w_gate_up"] = w(L, c.hidden_size, 2 * c.intermediate_size)
        layers["w_down"] = w(L, c.intermediate_size, c.hidden_size)
    return {"embed": w(c.vocab_size, c.hidden_size), "final_norm": a(c.hidden_size), "layers": layers,
            "lm_head": w(c.hidden_size, c.vocab_size)}


def _mm(x: jax.Array, w: jax.Array, blocks: MatmulBlocks, name: str, low_precision: bool = False) -> jax.Array:
    """x @ w in our kernel, under the op's name. Weights narrower than the activations (int8, fp8) are widened per
    block (weight-only quantisation), unless ``low_precision``: then the activations are cast to the weight dtype
    and the product runs at that dtype's rate (W8A8 / FP8 / FP4 compute), with the output in the activation dtype."""
    bm, bn, bk, splits = blocks
    with jax.named_scope(name):
        a = x.astype(w.dtype) if low_precision and w.dtype.itemsize < x.dtype.itemsize else x
        return matmul(a, w, bm=bm, bn=bn, bk=bk, splits=splits, out_dtype=x.dtype)


def _all_reduce(x: jax.Array, tp_axis: str | None) -> jax.Array:
    """The partial sums of a row-parallel matmul added over the tensor-parallel axis (none: unsharded)."""
    return x if tp_axis is None else jax.lax.psum(x, tp_axis)


def _mlp(h: jax.Array, layer: dict, c: LlamaConfig, blocks: ModelBlocks) -> jax.Array:
    if c.is_moe:
        return _moe_mlp(h, layer, c, blocks)
    gate_up = _mm(h, layer["w_gate_up"], blocks.gate_up, "gate_up", blocks.low_precision_compute)
    gate, up = jnp.split(gate_up, 2, axis=-1)
    return _mm(jax.nn.silu(gate) * up, layer["w_down"], blocks.down, "down", blocks.low_precision_compute)


def _moe_mlp(h: jax.Array, layer: dict, c: LlamaConfig, blocks: ModelBlocks) -> jax.Array:
    """Top-k routed SwiGLU experts with capacity-based dispatch (GShard / Switch style).

    The step's tokens reach ``experts_touched`` experts; each processes up to ``expert_capacity``
    tokens, so the executed expert matmuls are (capacity, D) x (D, 2F) for each touched expert.
    Which experts are touched is decided by the router; for counting only how many matters.
    """
    logits = _mm(h, layer["w_router"], blocks.router, "router", blocks.low_precision_compute).astype(jnp.float32)
    weights, chosen = jax.lax.top_k(jax.nn.softmax(logits, axis=-1), c.experts_per_token)
    weights = weights / weights.sum(-1, keepdims=True)
    touched = blocks.experts_touched
    # Rank experts by how many tokens chose them; the top `touched` run.
    load = jnp.zeros(c.num_experts, jnp.int32).at[chosen.reshape(-1)].add(1)
    experts = jnp.argsort(-load)[:touched]
    out = jnp.zeros_like(h)
    for slot in range(touched):
        e = experts[slot]
        gate = (weights * (chosen == e)).sum(-1)  # (tokens,) routing weight of expert e, 0 if not chosen
        order = jnp.argsort(-(gate > 0).astype(jnp.int32), stable=True)[: blocks.expert_capacity]
        xs = h[order]
        gate_up = _mm(xs, layer["w_gate_up"][e], blocks.gate_up, "gate_up", blocks.low_precision_compute)
        g, u = jnp.split(gate_up, 2, axis=-1)
        ys = _mm(jax.nn.silu(g) * u, layer["w_down"][e], blocks.down, "down", blocks.low_precision_compute)
        out = out.at[order].add(ys * gate[order][:, None].astype(ys.dtype))
    return out


def _split_heads(qkv: jax.Array, c: LlamaConfig) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(T, (H + 2G) hd) -> q (T, H, hd), k (T, G, hd), v (T, G, hd)."""
    q, k, v = jnp.split(qkv, [c.q_size, c.q_size + c.kv_size], axis=-1)
    t = qkv.shape[0]
    return (q.reshape(t, c.num_heads, c.head_dim), k.reshape(t, c.num_kv_heads, c.head_dim),
            v.reshape(t, c.num_kv_heads, c.head_dim))


def prefill(params: dict, tokens: jax.Array, config: LlamaConfig, blocks: ModelBlocks,
            cache_len: int, all_logits: bool = False, tp_axis: str | None = None) -> tuple[jax.Array, KVCache]:
    """Run a (B, S) prompt through the model; return logits (B, V) of the last position (or (B, S, V))
    and the KV cache (layers, B, G, cache_len, hd) holding the S prompt positions."""
    c = config
    batch, seq = tokens.shape
    act = params["final_norm"].dtype  # norms are kept in the activation dtype; weights may be narrower
    x = params["embed"][tokens].astype(act).reshape(batch * seq, c.hidden_size)
    cos, sin = rope_tables(jnp.arange(seq), c.head_dim, c.rope_theta)
    bq, bkv = blocks.attention

    def layer_fn(x, layer):
        with jax.named_scope("attention"):
            h = rms_norm(x, layer["attn_norm"], c.rms_norm_eps)
            q, k, v = _split_heads(_mm(h, layer["wqkv"], blocks.qkv, "qkv", blocks.low_precision_compute), c)
            q = apply_rope(q.reshape(batch, seq, c.num_heads, c.head_dim), cos, sin)
            k = apply_rope(k.reshape(batch, seq, c.num_kv_heads, c.head_dim), cos, sin)
            v = v.reshape(batch, seq, c.num_kv_heads, c.head_dim)
            q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))  # (B, heads, S, hd)
            attn = flash_attention(q, k, v, causal=True, block_q=bq, block_kv=bkv)
            attn = attn.transpose(0, 2, 1, 3).reshape(batch * seq, c.q_size)
            x = x + _all_reduce(_mm(attn, layer["wo"], blocks.o, "o_proj", blocks.low_precision_compute), tp_axis)
        with jax.named_scope("mlp"):
            x = x + _all_reduce(_mlp(rms_norm(x, layer["mlp_norm"], c.rms_norm_eps), layer, c, blocks), tp_axis)
        return x, (k, v)

    x, (ks, vs) = jax.lax.scan(layer_fn, x, params["layers"])
    pad = [(0, 0)] * 3 + [(0, cache_len - seq), (0, 0)]
    cache = KVCache(jnp.pad(ks, pad), jnp.pad(vs, pad))
    x = x.reshape(batch, seq, c.hidden_size)
    if not all_logits:
        x = x[:, -1]
    with jax.named_scope("head"):
        h = rms_norm(x, params["final_norm"], c.rms_norm_eps)
        logits = _mm(h.reshape(-1, c.hidden_size), params["lm_head"], blocks.lm_head, "lm_head",
                     blocks.low_precision_compute)
    return logits.reshape(*x.shape[:-1], c.vocab_size).astype(jnp.float32), cache


def decode(params: dict, tokens: jax.Array, cache: KVCache, lengths: jax.Array, config: LlamaConfig,
           blocks: ModelBlocks, tp_axis: str | None = None) -> tuple[jax.Array, KVCache]:
    """One token per sequence: tokens (B,) at positions ``lengths - 1`` (lengths count the new token).

    Sequences may be at different positions (a ragged batch): each gets its own RoPE angle and
    attends over its own ``lengths[b]`` cache positions. The stacked cache (L, B, G, S, hd) is the
    layer scan's carry and each layer's decode kernel writes its new row in place. Returns logits
    (B, V) and the cache with the new K/V appended."""
    c = config
    x = params["embed"][tokens].astype(params["final_norm"].dtype)
    cos, sin = rope_tables((lengths - 1)[:, None], c.head_dim, c.rope_theta)  # (B, 1, hd)

    def layer_fn(carry, inputs):
        x, k_cache, v_cache = carry
        layer, index = inputs
        with jax.named_scope("attention"):
            h = rms_norm(x, layer["attn_norm"], c.rms_norm_eps)
            q, k, v = _split_heads(_mm(h, layer["wqkv"], blocks.qkv, "qkv", blocks.low_precision_compute), c)
            q = apply_rope(q[:, None], cos, sin)[:, 0]
            k = apply_rope(k[:, None], cos, sin)[:, 0]
            k, v = k.astype(k_cache.dtype), v.astype(v_cache.dtype)  # an fp8 cache stores them narrow
            attn, cache = decode_step(q, k, v, KVCache(k_cache, v_cache), lengths, block_kv=blocks.decode_kv,
                                      splits=blocks.decode_splits, layer=index)
            o = _mm(attn.reshape(-1, c.q_size), layer["wo"], blocks.o, "o_proj", blocks.low_precision_compute)
            x = x + _all_reduce(o, tp_axis)
        with jax.named_scope("mlp"):
            x = x + _all_reduce(_mlp(rms_norm(x, layer["mlp_norm"], c.rms_norm_eps), layer, c, blocks), tp_axis)
        return (x, cache.k, cache.v), None

    layer_index = jnp.arange(c.num_layers, dtype=jnp.int32)
    (x, ks, vs), _ = jax.lax.scan(layer_fn, (x, cache.k, cache.v), (params["layers"], layer_index))
    with jax.named_scope("head"):
        h = rms_norm(x, params["final_norm"], c.rms_norm_eps)
        logits = _mm(h, params["lm_head"], blocks.lm_head, "lm_head", blocks.low_precision_compute)
    return logits.astype(jnp.float32), KVCache(ks, vs)


def sample(logits: jax.Array, key: jax.Array, temperature: float) -> jax.Array:
    """Greedy at temperature 0, else a draw from softmax(logits / temperature)."""
    if temperature <= 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


@dataclass
class Generation:
    """What one generate call executed: tokens and the shapes/lengths each step ran with."""

    prompt: np.ndarray            # (B, S)
    new_tokens: np.ndarray        # (B, steps)
    cache_len: int
    decode_lengths: list[np.ndarray]  # lengths passed to each decode step
    prefill_s: float
    decode_s: list[float]


class Generator:
    """Jitted prefill and decode step for one config and block choice; one compile per shape, none per token.

    ``prefill_fn`` and ``decode_fn`` take the arguments of ``prefill`` and ``decode`` (the tensor-parallel
    forms in ``accelsim.models.sharding`` do)."""

    def __init__(self, config: LlamaConfig, prefill_blocks: ModelBlocks, decode_blocks: ModelBlocks,
                 prefill_fn: Callable = prefill, decode_fn: Callable = decode) -> None:
        self.config = config
        self.prefill_blocks, self.decode_blocks = prefill_blocks, decode_blocks
        self._prefill = jax.jit(prefill_fn, static_argnames=("config", "blocks", "cache_len", "all_logits"))
        self._decode = jax.jit(decode_fn, static_argnames=("config", "blocks"), donate_argnames=("cache",))

    def generate(self, params: dict, prompt: np.ndarray, max_new_tokens: int, temperature: float = 0.0,
                 seed: int = 0, eos_id: int | None = None,
                 on_token: Callable[[int, np.ndarray], None] | None = None) -> Generation:
        """Prefill the (B, S) prompt, then decode up to ``max_new_tokens`` tokens per sequence."""
        import time

        prompt = np.asarray(prompt, np.int32)
        batch, seq = prompt.shape
        cache_len = seq + max_new_tokens
        start = time.perf_counter()
        logits, cache = self._prefill(params, jnp.asarray(prompt), config=self.config, blocks=self.prefill_blocks,
                                      cache_len=cache_len)
        key = jax.random.PRNGKey(seed)
        key, sub = jax.random.split(key)
        token = jax.block_until_ready(sample(logits, sub, temperature))
        prefill_s = time.perf_counter() - start
        tokens, lengths_seen, times = [np.asarray(token)], [], []
        done = np.zeros(batch, bool) if eos_id is None else np.asarray(token) == eos_id
        if on_token:
            on_token(0, np.asarray(token))
        for step in range(1, max_new_tokens):
            if done.all():
                break
            lengths = np.full(batch, seq + step, np.int32)
            start = time.perf_counter()
            logits, cache = self._decode(params, token, cache, jnp.asarray(lengths), config=self.config,
                                         blocks=self.decode_blocks)
            key, sub = jax.random.split(key)
            token = jax.block_until_ready(sample(logits, sub, temperature))
            times.append(time.perf_counter() - start)
            lengths_seen.append(lengths)
            tokens.append(np.asarray(token))
            if eos_id is not None:
                done |= np.asarray(token) == eos_id
            if on_token:
                on_token(step, np.asarray(token))
        return Generation(prompt, np.stack(tokens, axis=1), cache_len, lengths_seen, prefill_s, times)


def expected_experts_touched(config: LlamaConfig, tokens: int) -> int:
    """Expected distinct experts ``tokens`` tokens reach under uniform top-k routing: E(1 - (1 - k/E)^T)."""
    e, k = config.num_experts, config.experts_per_token
    if tokens == 1:
        return k
    return min(e, max(k, math.ceil(e * (1 - (1 - k / e) ** tokens))))
