"""A plain-jnp Llama forward pass: the oracle the kernel-built model is checked against.

One file, no kernels, no cache: full causal attention over the whole sequence, in float32
with ``Precision.HIGHEST`` on every matmul so GPUs do not drop to TF32. The parameter layout
is the one ``accelsim.models.weights`` documents (``x @ W``, ``W`` shaped ``(in, out)``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from accelsim.errors import AccelsimError
from accelsim.models.config import LlamaConfig

HIGHEST = jax.lax.Precision.HIGHEST


def mm(x: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.matmul(x, w, precision=HIGHEST)


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return weight * x32.astype(x.dtype)


def rope_tables(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """``cos``/``sin`` of shape ``positions.shape + (head_dim,)`` for the rotate-half (NeoX / Hugging Face)
    convention: ``(T, hd)`` for positions ``(T,)`` shared by a batch, ``(B, T, hd)`` for ``(B, T)``."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # (..., hd/2)
    angles = jnp.concatenate([angles, angles], axis=-1)  # (..., hd): dim i and i + hd/2 share a frequency
    return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate pairs ``(x[i], x[i + hd/2])`` of ``x`` ``(B, T, heads, hd)`` by each position's angle.

    ``cos``/``sin`` are ``(T, hd)``, the same positions for every sequence, or ``(B, T, hd)``, each
    sequence its own (a decode step of a ragged batch)."""
    batch, seq, _, hd = x.shape
    if cos.shape != sin.shape or cos.shape not in ((seq, hd), (batch, seq, hd)):
        raise AccelsimError(f"rope: cos/sin of shape {tuple(cos.shape)}/{tuple(sin.shape)} do not fit x of shape "
                            f"{tuple(x.shape)}: need ({seq}, {hd}) or ({batch}, {seq}, {hd})")
    half = hd // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos, sin = cos[..., None, :], sin[..., None, :]  # broadcast over heads
    return (x * cos + rotated * sin).astype(x.dtype)


def attention(x: jax.Array, layer: dict, c: LlamaConfig, cos: jax.Array, sin: jax.Array) -> jax.Array:
    B, T, _ = x.shape
    q = mm(x, layer["wq"]).reshape(B, T, c.num_heads, c.head_dim)
    k = mm(x, layer["wk"]).reshape(B, T, c.num_kv_heads, c.head_dim)
    v = mm(x, layer["wv"]).reshape(B, T, c.num_kv_heads, c.head_dim)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    group = c.num_heads // c.num_kv_heads  # GQA: query head h reads kv head h // group
    k, v = jnp.repeat(k, group, axis=2), jnp.repeat(v, group, axis=2)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=HIGHEST).astype(jnp.float32) / jnp.sqrt(
        jnp.float32(c.head_dim))
    causal = jnp.tril(jnp.ones((T, T), dtype=bool))
    scores = jnp.where(causal, scores, -jnp.inf)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v, precision=HIGHEST).reshape(B, T, c.q_size)
    return mm(out, layer["wo"])


def mlp(x: jax.Array, layer: dict) -> jax.Array:
    """SwiGLU: ``down(silu(x @ gate) * (x @ up))``."""
    return mm(jax.nn.silu(mm(x, layer["w_gate"])) * mm(x, layer["w_up"]), layer["w_down"])


def forward(params: dict, config: LlamaConfig, token_ids: Any) -> jax.Array:
    """Logits for every position: ``(T, V)`` for ids ``(T,)``, ``(B, T, V)`` for ``(B, T)``.

    Pure and jit-able with ``config`` static: ``jax.jit(forward, static_argnums=1)``.
    """
    c = config
    if c.is_moe:
        raise AccelsimError("the reference forward pass has no mixture-of-experts MLP")
    if c.rope_scaling is not None:
        raise AccelsimError(f"the reference forward pass has no RoPE scaling (config has {dict(c.rope_scaling)})")
    ids = jnp.asarray(token_ids, dtype=jnp.int32)
    squeeze = ids.ndim == 1
    ids = ids[None] if squeeze else ids
    x = params["embed"][ids]  # (B, T, D)
    cos, sin = rope_tables(jnp.arange(ids.shape[1]), c.head_dim, c.rope_theta)
    for layer in params["layers"]:
        x = x + attention(rms_norm(x, layer["attn_norm"], c.rms_norm_eps), layer, c, cos, sin)
        x = x + mlp(rms_norm(x, layer["mlp_norm"], c.rms_norm_eps), layer)
    x = rms_norm(x, params["final_norm"], c.rms_norm_eps)
    head = params["embed"].T if c.tie_embeddings else params["lm_head"]
    logits = mm(x, head).astype(jnp.float32)
    return logits[0] if squeeze else logits


def greedy_generate(params: dict, config: LlamaConfig, prompt_ids: list[int], steps: int,
                    eos_id: int | None = None) -> list[int]:
    """Append up to ``steps`` argmax tokens to ``prompt_ids``, recomputing the full forward pass each step.

    The sequence is padded to its final length so one compiled program serves every step: with a
    causal mask the padding after position ``n - 1`` cannot change that position's logits.
    """
    total = len(prompt_ids) + steps
    step = jax.jit(lambda p, ids, n: jnp.argmax(forward(p, config, ids)[n - 1]))
    ids = list(prompt_ids)
    for _ in range(steps):
        padded = jnp.asarray(ids + [0] * (total - len(ids)), dtype=jnp.int32)
        nxt = int(step(params, padded, len(ids)))
        ids.append(nxt)
        if eos_id is not None and nxt == eos_id:
            break
    return ids[len(prompt_ids):]
