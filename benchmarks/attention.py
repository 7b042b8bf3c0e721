"""Attention benchmark: our flash-prefill and decode kernels vs jax.nn.dot_product_attention on this host.

Run: python -m benchmarks.attention [--quick]
Prefill (causal, B=1, H=8, G=2, D=64) and decode (B=4, H=8, G=2, D=64, contiguous cache filled to the
context) run our Pallas kernels with the blocks the tiling model picks for the calibrated ``host`` chip
(``plan_attention(...).blocks``, ``plan_decode(...).blocks``) and XLA's ``jax.nn.dot_product_attention``
side by side in one run (timed in alternation), f32; ratios mean more than absolute times on a shared machine. Each row also
prints the max abs difference between the two outputs.

Decode compares whole steps: ours is ``decode_step`` (the append kernel writes the new K/V row, then the
attention kernel reads the valid prefix); XLA's is a jitted ``.at[].set`` of the new row plus
``dot_product_attention`` with ``key_value_seq_lengths`` (q as (B, 1, H, D), the cache kept in XLA's
(B, L, G, D) layout, so no transpose is timed). Neither donates its cache, so both copy it per step.

Paged decode (page size ``PAGE_SIZE``, pages in a shuffled table) is compared with XLA gathering the pages
into a contiguous cache and attending; split-KV decode (flash-decoding, ``SPLITS`` ranges merged by the
combine kernel) with the same XLA step as contiguous decode.

On CPU our kernels run compiled by default (``kernels.grid_exec``: the same kernel bodies and blocks, parallel
grid axes vmapped, the sequential axis a scan); ``--interpret`` runs them in Pallas interpret mode instead,
which re-moves whole operands at every grid step (benchmarks/compiled.py compares the two).
The JSON's top-level ``"ratios"`` maps each case to ours / XLA time (lower is better).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from accelsim.models.session import host_chip
from accelsim.report.table import render
from accelsim.tiling.attention import plan_attention
from accelsim.tiling.decode import plan_decode
from benchmarks.common import kernels_as, side_by_side, write_results
from kernels.attention import flash_attention
from kernels.decode import KVCache, PagedKVCache, decode_step

PREFILL = dict(batch=1, heads=8, kv_heads=2, head_dim=64)
DECODE = dict(batch=4, heads=8, kv_heads=2, head_dim=64)
PAGE_SIZE = 128
SPLITS = 4


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


@jax.jit
def _xla_paged_decode_step(q, k_new, v_new, k_pages, v_pages, page_table, lengths):
    """The paged step as XLA would run it: write row lengths-1 into its page, gather the pages into (B, L, G, D)."""
    bi, pos = jnp.arange(q.shape[0]), lengths - 1
    page, offset = page_table[bi, pos // k_pages.shape[2]], pos % k_pages.shape[2]
    k_pages = k_pages.at[page, :, offset].set(k_new)
    v_pages = v_pages.at[page, :, offset].set(v_new)

    def contiguous(pages):
        b, n, g, ps, d = pages[page_table].shape
        return pages[page_table].transpose(0, 1, 3, 2, 4).reshape(b, n * ps, g, d)

    out = jax.nn.dot_product_attention(q[:, None], contiguous(k_pages), contiguous(v_pages),
                                       key_value_seq_lengths=lengths, implementation="xla")
    return out[:, 0], k_pages, v_pages


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
        ours, xla = side_by_side(lambda: flash_attention(q, k, v, causal=True, **blocks),
                                 lambda: _xla_prefill(qt, kt, vt), repeats)
        rows.append({"phase": "prefill", "case": f"S={s}", "shape": {**PREFILL, "q_len": s, "kv_len": s, "causal": True},
                     "blocks": blocks, "ours_s": ours, "xla_s": xla, "ratio": ours / xla, "max_abs_diff": diff})
    return rows


def paged_case(ctx: int, host) -> tuple:
    """(q, k_new, v_new, paged cache, lengths, blocks): ``decode_case``'s step with its cache cut into pages
    listed in a shuffled page table."""
    q, k_new, v_new, cache, lengths, _ = decode_case(ctx, host)
    b, g, _, d = cache.k.shape
    pages = -(-ctx // PAGE_SIZE)

    def paged(x):
        x = jnp.pad(x, ((0, 0), (0, 0), (0, pages * PAGE_SIZE - ctx), (0, 0)))
        return x.reshape(b, g, pages, PAGE_SIZE, d).transpose(0, 2, 1, 3, 4).reshape(b * pages, g, PAGE_SIZE, d)

    order = jax.random.permutation(jax.random.PRNGKey(ctx + 1), b * pages)
    inverse = jnp.argsort(order)
    table = inverse.reshape(b, pages).astype(jnp.int32)
    paged_cache = PagedKVCache(paged(cache.k)[order], paged(cache.v)[order], table)
    blocks = plan_decode([ctx] * b, DECODE["heads"], g, d, pages * PAGE_SIZE, host, "f32", page_size=PAGE_SIZE).blocks
    return q, k_new, v_new, paged_cache, lengths, blocks


def _decode_row(phase: str, ctx: int, blocks: dict, ours, xla, repeats: int) -> dict:
    ours_out, xla_out = ours()[0], xla()[0]
    diff = float(jnp.max(jnp.abs(ours_out - xla_out)))
    ours_s, xla_s = side_by_side(ours, xla, repeats)
    return {"phase": phase, "case": f"ctx={ctx}", "shape": {**DECODE, "context": ctx, "cache_len": ctx},
            "blocks": blocks, "ours_s": ours_s, "xla_s": xla_s, "ratio": ours_s / xla_s, "max_abs_diff": diff}


def decode_rows(contexts: list[int], host, repeats: int) -> list[dict]:
    """Contiguous, split-KV and paged decode steps per context, each beside its XLA step."""
    rows = []
    for ctx in contexts:
        q, k_new, v_new, cache, lengths, blocks = decode_case(ctx, host)
        kt, vt = cache.k.transpose(0, 2, 1, 3), cache.v.transpose(0, 2, 1, 3)  # XLA's (B, L, G, D)
        xla = lambda: _xla_decode_step(q, k_new, v_new, kt, vt, lengths)  # noqa: E731
        rows.append(_decode_row("decode", ctx, blocks, lambda: decode_step(q, k_new, v_new, cache, lengths, **blocks),
                                xla, repeats))
        split = {"block_kv": min(blocks["block_kv"], -(-ctx // SPLITS)), "splits": SPLITS}
        rows.append(_decode_row("split decode", ctx, split,
                                lambda: decode_step(q, k_new, v_new, cache, lengths, **split), xla, repeats))
        q, k_new, v_new, pcache, lengths, pblocks = paged_case(ctx, host)
        rows.append(_decode_row(
            "paged decode", ctx, pblocks, lambda: decode_step(q, k_new, v_new, pcache, lengths, **pblocks),
            lambda: _xla_paged_decode_step(q, k_new, v_new, *pcache, lengths), repeats))
    return rows


def _ms(value: float) -> str:
    return f"{value * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats (~40 s)")
    parser.add_argument("--interpret", action="store_true", help="run our kernels in Pallas interpret mode")
    args = parser.parse_args()
    seqs, contexts, repeats = ([128, 512], [512, 2048], 3) if args.quick else ([128, 512, 1024], [512, 2048, 8192], 5)
    host = host_chip(print)
    with kernels_as(args.interpret):
        rows = prefill_rows(seqs, host, repeats) + decode_rows(contexts, host, repeats)
    print(render(rows, [
        ("phase", lambda r: r["phase"]), ("case", lambda r: r["case"]),
        ("blocks", lambda r: "x".join(map(str, r["blocks"].values()))),
        ("ours", lambda r: _ms(r["ours_s"])), ("xla", lambda r: _ms(r["xla_s"])),
        ("ours/xla", lambda r: f"{r['ratio']:.2f}x"), ("max |diff|", lambda r: f"{r['max_abs_diff']:.1e}"),
    ], title=(f"attention f32 on {jax.default_backend()} ({'quick' if args.quick else 'full'}): our Pallas kernels "
              f"({'interpret mode' if args.interpret else 'compiled'}, "
              f"blocks from the {host.name} plan) vs jax.nn.dot_product_attention; prefill B=1 H=8 G=2 D=64 causal, "
              f"decode B=4 H=8 G=2 D=64")))
    ratios = {f"{r['phase']} {r['case']}": r["ratio"] for r in rows}
    path = write_results("attention", rows, ratios=ratios, quick=args.quick, chip=host.name,
                         form="interpret" if args.interpret else "compiled")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
