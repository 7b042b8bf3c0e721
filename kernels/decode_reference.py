"""Plain-jnp references for the decode kernels: attention over a KV cache, and one whole decode step."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from kernels.kv_cache import KVCache, PagedKVCache, gather_pages


def decode_reference(q: jax.Array, k_cache: jax.Array, v_cache: jax.Array, lengths: jax.Array) -> jax.Array:
    """Plain jnp attention of q (B, H, D) over positions [0, lengths[b]) of (B, G, L, D) caches."""
    (b, h, d), (_, g, l_max, _) = q.shape, k_cache.shape
    group = h // g
    qf = q.astype(jnp.float32).reshape(b, g, group, d)
    s = jnp.einsum("bgrd,bgld->bgrl", qf, k_cache.astype(jnp.float32),
                   precision=lax.Precision.HIGHEST) / math.sqrt(d)
    valid = jnp.arange(l_max)[None, :] < jnp.asarray(lengths)[:, None]
    s = jnp.where(valid[:, None, None, :], s, -jnp.inf)
    p = jax.nn.softmax(s, axis=-1)
    v = jnp.where(valid[:, None, :, None], v_cache.astype(jnp.float32), 0.0)
    out = jnp.einsum("bgrl,bgld->bgrd", p, v, precision=lax.Precision.HIGHEST)
    return out.reshape(b, h, d).astype(q.dtype)


def _with_kv(cache: KVCache | PagedKVCache, k: jax.Array, v: jax.Array) -> KVCache | PagedKVCache:
    """The cache with its k and v arrays (k, v or k_pages, v_pages) replaced."""
    return cache._replace(**dict(zip(cache._fields[:2], (k, v))))


def decode_step_reference(q: jax.Array, k_new: jax.Array, v_new: jax.Array, cache: KVCache | PagedKVCache,
                          lengths: jax.Array, layer: int | None = None,
                          ) -> tuple[jax.Array, KVCache | PagedKVCache]:
    """Plain jnp ``decode_step``: scatter the new token, then ``decode_reference``; ``layer`` as there."""
    if layer is not None:
        k_all, v_all = cache[0], cache[1]
        out, new = decode_step_reference(q, k_new, v_new, _with_kv(cache, k_all[layer], v_all[layer]), lengths)
        return out, _with_kv(cache, k_all.at[layer].set(new[0]), v_all.at[layer].set(new[1]))
    b = q.shape[0]
    pos = jnp.asarray(lengths) - 1
    bi = jnp.arange(b)
    if isinstance(cache, PagedKVCache):
        ps = cache.k_pages.shape[2]
        page = cache.page_table[bi, pos // ps]
        k = cache.k_pages.at[page, :, pos % ps].set(k_new)
        v = cache.v_pages.at[page, :, pos % ps].set(v_new)
        new = PagedKVCache(k, v, cache.page_table)
        out = decode_reference(q, gather_pages(k, cache.page_table),
                               gather_pages(v, cache.page_table), lengths)
        return out, new
    k = cache.k.at[bi, :, pos].set(k_new)
    v = cache.v.at[bi, :, pos].set(v_new)
    return decode_reference(q, k, v, lengths), KVCache(k, v)
