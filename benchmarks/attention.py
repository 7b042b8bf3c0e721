"""Attention benchmark: our flash-prefill and decode kernels vs jax.nn.dot_product_attention on this host.

Run: python -m benchmarks.attention [--quick]
Prefill (causal, B=1, H=8, G=2, D=64) and decode (B=4, H=8, G=2, D=64, contiguous cache filled to the
context) run our Pallas kernels with the blocks the tiling model picks for the calibrated ``host`` chip
(``plan_attention(...).blocks``, ``plan_decode(...).blocks``) and XLA's ``jax.nn.dot_product_attention``
side by side in one run, f32; ratios mean more than absolute times on a shared machine. Each row also
prints the max abs difference between the two outputs.

Decode compares whole steps: ours is ``decode_step`` (the append kernel writes the new K/V row, then the
attention kernel reads the valid prefix); XLA's is a jitted ``.at[].set`` of the new row plus
``dot_product_attention`` with ``key_value_seq_lengths`` (q as (B, 1, H, D), the cache kept in XLA's
(B, L, G, D) layout, so no transpose is timed). Neither donates its cache, so both copy it per step.

Why ours is slower on CPU: off TPU/GPU, ``pallas_call`` runs in interpret mode. The kernel body is
lowered to ordinary XLA ops and the grid becomes an XLA while-loop; every grid step carries whole
operands through the loop, slices its blocks out with dynamic-slice, runs the body, and writes its
output block back with a dynamic-update-slice of the whole output buffer, with no fusion across steps
and no parallelism across the grid. That emulates the TPU memory hierarchy; it is not a CPU kernel, and
its cost grows with the number of grid steps times the operand sizes. XLA's own
``dot_product_attention`` on CPU is a few large fused, multithreaded dot and softmax ops: the fast path
here. (The host plan picks whole-sequence prefill blocks, so a prefill grid is only B*G steps and the
interpret overhead is small there; decode grids walk the cache in several blocks per sequence.)
On TPU (Mosaic) the same kernels compile to real code, and on GPU every kernel has a Triton form
(``kernels.backend``); on CPU the compiled executor (``kernels.grid_exec``, benchmarks/compiled.py) runs
the same kernel bodies without interpret mode. There the blocks
the tiling model picks decide what moves between HBM and on-chip memory; on CPU this benchmark shows
that the kernels run, agree with XLA, and what interpret mode costs.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from accelsim.models.session import host_chip
from accelsim.report.table import render
from accelsim.tiling.attention import plan_attention
from accelsim.tiling.decode import plan_decode
from benchmarks.common import median_time, write_results
from kernels.attention import flash_attention
from kernels.decode import KVCache, decode_step

PREFILL = dict(batch=1, heads=8, kv_heads=2, head_dim=64)
DECODE = dict(batch=4, heads=8, kv_heads=2, head_dim=64)


@jax.jit
def _xla_prefill(q, k, v):
    """q (B, S, H, D), k/v (B, S, G, D): XLA's fused attention, top-left causal mask."""
    return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")


@jax.jit
def _xla_decode_step(q, k_new, v_new, k_cache, v_cache, lengths):
    """q (B, H, D), k_new/v_new (B, G, D), caches (B, L, G, D): write row lengths-1, attend over lengths."""
    bi = jnp.arange(q.shape[0])
    k_cache = k_cache.at[bi, lengths - 1].set(k_new)
    v_cache = v_cache.at[bi, lengths - 1].set(v_new)
    out = jax.nn.dot_product_attention(q[:, None], k_cache, v_cache, key_value_seq_lengths=lengths,
                                       implementation="xla")
    return out[:, 0], k_cache, v_cache


def prefill_case(s: int, host) -> tuple:
    """(q, k, v, blocks) of the causal prefill at sequence length ``s``: f32 normals, the host plan's blocks."""
    b, h, g, d = (PREFILL[k] for k in ("batch", "heads", "kv_heads", "head_dim"))
    kq, kk, kv = jax.random.split(jax.random.PRNGKey(s), 3)
    q = jax.random.normal(kq, (b, h, s, d), jnp.float32)
    k = jax.random.normal(kk, (b, g, s, d), jnp.float32)
    v = jax.random.normal(kv, (b, g, s, d), jnp.float32)
    return q, k, v, plan_attention(b, h, g, s, s, d, True, host, "f32").blocks


def decode_case(ctx: int, host) -> tuple:
    """(q, k_new, v_new, cache, lengths, blocks) of one decode step over a cache of ``ctx`` rows, filled by it."""
    b, h, g, d = (DECODE[k] for k in ("batch", "heads", "kv_heads", "head_dim"))
    keys = jax.random.split(jax.random.PRNGKey(ctx), 5)
    q = jax.random.normal(keys[0], (b, h, d), jnp.float32)
    k_new = jax.random.normal(keys[1], (b, g, d), jnp.float32)
    v_new = jax.random.normal(keys[2], (b, g, d), jnp.float32)
    cache = KVCache(jax.random.normal(keys[3], (b, g, ctx, d), jnp.float32),
                    jax.random.normal(keys[4], (b, g, ctx, d), jnp.float32))
    lengths = jnp.full((b,), ctx, jnp.int32)  # the new token fills the cache's last row
    return q, k_new, v_new, cache, lengths, plan_decode([ctx] * b, h, g, d, ctx, host, "f32").blocks


def prefill_rows(seqs: list[int], host, repeats: int) -> list[dict]:
    rows = []
    for s in seqs:
        q, k, v, blocks = prefill_case(s, host)
        qt, kt, vt = (x.transpose(0, 2, 1, 3) for x in (q, k, v))  # XLA's (B, S, heads, D), outside the timing
        ours_out = flash_attention(q, k, v, causal=True, **blocks)
        xla_out = _xla_prefill(qt, kt, vt).transpose(0, 2, 1, 3)
        diff = float(jnp.max(jnp.abs(ours_out - xla_out)))
        ours = median_time(lambda: flash_attention(q, k, v, causal=True, **blocks), repeats=repeats)
        xla = median_time(lambda: _xla_prefill(qt, kt, vt), repeats=repeats)
        rows.append({"phase": "prefill", "case": f"S={s}", "shape": {**PREFILL, "q_len": s, "kv_len": s, "causal": True},
                     "blocks": blocks, "ours_s": ours, "xla_s": xla, "ratio": ours / xla, "max_abs_diff": diff})
    return rows


def decode_rows(contexts: list[int], host, repeats: int) -> list[dict]:
    rows = []
    for ctx in contexts:
        q, k_new, v_new, cache, lengths, blocks = decode_case(ctx, host)
        kt, vt = cache.k.transpose(0, 2, 1, 3), cache.v.transpose(0, 2, 1, 3)  # XLA's (B, L, G, D)
        ours_out, _ = decode_step(q, k_new, v_new, cache, lengths, **blocks)
        xla_out, _, _ = _xla_decode_step(q, k_new, v_new, kt, vt, lengths)
        diff = float(jnp.max(jnp.abs(ours_out - xla_out)))
        ours = median_time(lambda: decode_step(q, k_new, v_new, cache, lengths, **blocks), repeats=repeats)
        xla = median_time(lambda: _xla_decode_step(q, k_new, v_new, kt, vt, lengths), repeats=repeats)
        rows.append({"phase": "decode", "case": f"ctx={ctx}", "shape": {**DECODE, "context": ctx, "cache_len": ctx},
                     "blocks": blocks, "ours_s": ours, "xla_s": xla, "ratio": ours / xla, "max_abs_diff": diff})
    return rows


def _ms(value: float) -> str:
    return f"{value * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats (~40 s)")
    args = parser.parse_args()
    seqs, contexts, repeats = ([128, 512], [512, 2048], 3) if args.quick else ([128, 512, 1024], [512, 2048, 8192], 5)
    host = host_chip(print)
    rows = prefill_rows(seqs, host, repeats) + decode_rows(contexts, host, repeats)
    print(render(rows, [
        ("phase", lambda r: r["phase"]), ("case", lambda r: r["case"]),
        ("blocks", lambda r: "x".join(map(str, r["blocks"].values()))),
        ("ours", lambda r: _ms(r["ours_s"])), ("xla", lambda r: _ms(r["xla_s"])),
        ("ours/xla", lambda r: f"{r['ratio']:.2f}x"), ("max |diff|", lambda r: f"{r['max_abs_diff']:.1e}"),
    ], title=(f"attention f32 on {jax.default_backend()} ({'quick' if args.quick else 'full'}): our Pallas kernels "
              f"(blocks from the {host.name} plan) vs jax.nn.dot_product_attention; prefill B=1 H=8 G=2 D=64 causal, "
              f"decode B=4 H=8 G=2 D=64")))
    path = write_results("attention", rows, quick=args.quick, chip=host.name)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
