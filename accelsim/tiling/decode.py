"""Decode-attention tiling: one new token per sequence over a KV cache, append included.

Two kernels per step (kernels/decode.py): the append (grid (B, G)) reads the new K and V rows and
writes them into the cache; the attention (grid (B, G, nkv)) reads Q once per (b, g), then the kv
blocks 0..last_b of its sequence (the index is clamped at last_b, so later steps copy nothing and
compute nothing), and writes O once. Bytes depend on each sequence's length, not only on shapes.
"""

from __future__ import annotations

import math

import numpy as np

from accelsim.chips.spec import Chip
from accelsim.cost.blocks import BlockStream, grid_axes
from accelsim.cost.cache import level_bytes
from accelsim.cost.compute import exp_cycles, step_cycles, step_operand_bytes, waves
from accelsim.cost.timing import in_sequence, mbu, mfu, overlap
from accelsim.dtypes import canonical_dtype, dtype_bytes
from accelsim.errors import AccelsimError
from accelsim.tiling.attention import check_heads
from accelsim.tiling.matmul import check_dims, pick_fastest
from accelsim.tiling.plan import Plan


def check_lengths(lengths: list[int], cache_len: int, page_size: int | None) -> None:
    """One-line errors for a context longer than the cache or a page size that does not fit."""
    if page_size is not None:
        if page_size <= 0:
            raise AccelsimError(f"page size must be a positive integer (got {page_size})")
        if page_size > cache_len:
            raise AccelsimError(f"page size {page_size} is larger than the cache ({cache_len} positions)")
    for length in lengths:
        if length <= 0:
            raise AccelsimError(f"context length must be positive (got {length})")
        if length > cache_len:
            raise AccelsimError(f"context of {length} tokens is longer than the cache ({cache_len} positions)")


def decode_streams(lengths: np.ndarray, kv_heads: int, group: int, head_dim: int, cache_len: int,
                   block_kv: int, itemsize: float, splits: int = 1) -> list[BlockStream]:
    """The attention kernel's operands (contiguous cache) with its block shapes and index maps: grid (B, G, nkv),
    or (B, G, splits, per_split) with the partial softmax states as outputs when the KV range is split."""
    batch = len(lengths)
    nkv = math.ceil(cache_len / block_kv)
    per = math.ceil(nkv / splits)
    grid = (batch, kv_heads, nkv) if splits == 1 else (batch, kv_heads, splits, per)
    axes = grid_axes(grid)
    b, g = axes[0], axes[1]
    j = axes[2] if splits == 1 else axes[2] * per + axes[3]
    kv = np.minimum(j, (np.asarray(lengths, np.int64)[b] - 1) // block_kv)
    zero = np.zeros((1,) * len(grid), np.int64)
    q_shape, q_block = (batch, kv_heads, group, head_dim), (1, 1, group, head_dim)
    kv_shape, kv_block = (batch, kv_heads, cache_len, head_dim), (1, 1, block_kv, head_dim)
    streams = [BlockStream(grid, (b, g, zero, zero), q_block, q_shape, itemsize, False),
               BlockStream(grid, (b, g, kv, zero), kv_block, kv_shape, itemsize, False),
               BlockStream(grid, (b, g, kv, zero), kv_block, kv_shape, itemsize, False)]
    if splits == 1:
        return streams + [BlockStream(grid, (b, g, zero, zero), q_block, q_shape, itemsize, True)]
    for width in (head_dim, 2):  # partial accumulator, and (running max, running sum)
        streams.append(BlockStream(grid, (b, g, axes[2], zero, zero), (1, 1, 1, group, width),
                                   (batch, kv_heads, splits, group, width), 4.0, True))
    return streams


def plan_decode(lengths: list[int], heads: int, kv_heads: int, head_dim: int, cache_len: int, chip: Chip,
                dtype: str = "bf16", page_size: int | None = None, block_kv: int | None = None,
                splits: int | None = None) -> Plan:
    """The fastest decode plan for sequences of ``lengths`` (after the append) in a cache of ``cache_len``.

    ``page_size``: a paged cache of that page size; blocks are whole numbers of pages.
    ``splits``: KV ranges computed in parallel and merged (flash-decoding; contiguous caches); the
    tiler tries 1, 2, 4, ... when not given, so few (batch x kv-head) rows can still fill the chip.
    """
    lengths = [int(x) for x in lengths]
    check_dims(batch=len(lengths) or 0, heads=heads, kv_heads=kv_heads, head_dim=head_dim, cache_len=cache_len)
    check_lengths(lengths, cache_len, page_size)
    check_heads(heads, kv_heads)
    dtype = canonical_dtype(dtype)
    chip.peak_flops(dtype)
    if block_kv is not None:
        return _decode_plan(chip, dtype, lengths, heads, kv_heads, head_dim, cache_len, block_kv, page_size,
                            splits or 1)
    unit = page_size or 8
    candidates = sorted({unit * m for m in (1, 2, 4, 8, 16, 32, 64, 128) if unit * m <= max(unit, cache_len)})
    in_b = dtype_bytes(dtype)
    group = heads // kv_heads
    capacity = chip.staging_memory.capacity_bytes
    fits = [bkv for bkv in candidates if (4 * bkv + 4 * group) * head_dim * in_b + group * head_dim * 4 <= capacity]
    plans = []
    for bkv in fits:
        nkv = math.ceil(cache_len / bkv)
        options = [splits] if splits else [1] if page_size else [s for s in (1, 2, 4, 8, 16, 32, 64) if s <= nkv]
        plans += [_decode_plan(chip, dtype, lengths, heads, kv_heads, head_dim, cache_len, bkv, page_size, s)
                  for s in options]
    best = pick_fastest(plans)
    if best is None:
        raise AccelsimError(f"no decode block fits {chip.name}'s {chip.staging_memory.name}")
    return best


def _decode_plan(chip: Chip, dtype: str, lengths: list[int], heads: int, kv_heads: int, head_dim: int,
                 cache_len: int, block_kv: int, page_size: int | None, splits: int = 1) -> Plan:
    in_b = dtype_bytes(dtype)
    batch, group = len(lengths), heads // kv_heads
    lens = np.asarray(lengths)
    if splits > 1 and page_size:
        raise AccelsimError("decode: splits > 1 is implemented for contiguous caches only")
    if page_size:
        if block_kv % page_size:
            raise AccelsimError(f"decode block {block_kv} is not a whole number of pages of {page_size}")
        pages_per_block = block_kv // page_size
        kv_rows = page_size * np.maximum(-(-lens // page_size), pages_per_block)
        nkv = math.ceil(math.ceil(cache_len / page_size) / pages_per_block)
    else:
        kv_rows = np.minimum(-(-lens // block_kv) * block_kv, cache_len)
        nkv = math.ceil(cache_len / block_kv)
    per_split = math.ceil(nkv / splits)
    append = 4 * batch * kv_heads * head_dim * in_b  # read k_new, v_new; write both into the cache
    cache_rows = (math.ceil(cache_len / page_size) * page_size * batch) if page_size else cache_len * batch
    cache_bytes = cache_rows * kv_heads * head_dim * in_b  # one of K or V, whole
    q_bytes = batch * heads * head_dim * in_b
    kv_bytes = kv_heads * head_dim * in_b * float(kv_rows.sum())
    partial = batch * kv_heads * splits * group * (head_dim + 2) * 4.0 if splits > 1 else 0.0
    out_bytes = 0.0 if splits > 1 else q_bytes  # with splits, the combine kernel writes the output
    attention_copies = q_bytes + 2 * kv_bytes + out_bytes + partial
    # Behind a cache too: no block is shared between (b, g) rows and each row copies each of its blocks once,
    # so every wave misses at least the copies and the cache model (cost/cache.py) returns them unchanged
    # (tests/test_tiling_shortcuts.py checks this against decode_streams).
    attention_main = attention_copies
    computed = kv_heads * float((-(-lens // block_kv)).sum())
    cycles = step_cycles(chip, dtype, group, head_dim, block_kv) + step_cycles(chip, dtype, group, block_kv, head_dim)
    operand = step_operand_bytes(chip, in_b, group, head_dim, block_kv) + step_operand_bytes(chip, in_b, group, block_kv, head_dim)
    attention_levels = level_bytes(chip, attention_main, attention_copies, computed * operand)
    parallel = batch * kv_heads * splits
    attention_exps = computed * (group * block_kv + group)
    compute = waves(parallel, chip.matrix.count) * (computed * cycles + exp_cycles(chip, attention_exps)) / parallel
    first_kv = block_kv if page_size else min(block_kv, cache_len)
    last_out = group * (head_dim + 2) * 4.0 if splits > 1 else group * head_dim * in_b
    attention = overlap(chip, compute, attention_levels, (group + 2 * first_kv) * head_dim * in_b, last_out,
                        grid_steps=parallel * per_split,
                        operand_bytes=q_bytes + 2 * cache_bytes + (partial or q_bytes), parallel_blocks=parallel)
    timings = [attention, overlap(chip, 0.0, level_bytes(chip, append, append, 0.0), 2 * head_dim * in_b,
                                  2 * head_dim * in_b, grid_steps=batch * kv_heads,
                                  operand_bytes=2 * batch * kv_heads * head_dim * in_b + 4 * cache_bytes,
                                  parallel_blocks=batch)]
    combine_exps = batch * kv_heads * splits * group if splits > 1 else 0.0
    if splits > 1:
        combine_levels = level_bytes(chip, partial + q_bytes, partial + q_bytes, 0.0)
        combine_compute = waves(batch * kv_heads, chip.matrix.count) * exp_cycles(chip, combine_exps) / (batch * kv_heads)
        timings.append(overlap(chip, combine_compute, combine_levels, splits * group * (head_dim + 2) * 4.0,
                               group * head_dim * in_b, grid_steps=batch * kv_heads, operand_bytes=partial + q_bytes,
                               parallel_blocks=batch))
    step = in_sequence(chip, timings)
    levels, memory, total_cycles, time_s, bound = (step.bytes_per_level, step.memory_cycles, step.total_cycles,
                                                   step.time_s, step.bound)
    scores = float(lens.sum()) * heads
    flops = 4.0 * scores * head_dim
    main = levels[chip.main_memory.name]
    grid = (batch, kv_heads, nkv) if splits == 1 else (batch, kv_heads, splits, per_split)
    return Plan(
        op="decode", chip=chip.name, dtype=dtype,
        shape=dict(batch=batch, heads=heads, kv_heads=kv_heads, head_dim=head_dim, cache_len=cache_len,
                   context=int(lens.max()), page_size=page_size or 0),
        blocks={"block_kv": block_kv, "splits": splits}, grid=grid, bytes_per_level=levels,
        compulsory_bytes=append + 2 * q_bytes + 2 * kv_heads * head_dim * in_b * float(lens.sum()),
        flops=flops, executed_flops=4.0 * computed * group * block_kv * head_dim,
        compute_cycles=step.compute_cycles, memory_cycles=memory, total_cycles=total_cycles,
        time_s=time_s, bound=bound, mfu=mfu(chip, dtype, flops, time_s), mbu=mbu(chip, main, time_s),
        other_ops={"exp": scores, "exp_executed": attention_exps + combine_exps,
                   "kv_cache_read_bytes": 2 * kv_bytes, "kv_cache_write_bytes": append / 2},
    )
