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
from accelsim.cost.compute import exp_cycles, step_cycles, step_operand_bytes, waves
from accelsim.cost.timing import mbu, mfu, overlap
from accelsim.dtypes import canonical_dtype, dtype_bytes
from accelsim.errors import AccelsimError
from accelsim.tiling.attention import Operand, _level_bytes, check_heads, main_bytes_with_cache
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


def decode_operands(lengths: np.ndarray, kv_heads: int, group: int, head_dim: int, cache_len: int,
                    block_kv: int, itemsize: float) -> tuple[list[Operand], tuple[int, ...]]:
    """Attention-kernel operands (contiguous cache) over its grid, for the cache model."""
    batch = len(lengths)
    nkv = math.ceil(cache_len / block_kv)
    b, g, j = (a.reshape(-1) for a in np.indices((batch, kv_heads, nkv)))
    last = (lengths[b] - 1) // block_kv
    kv = np.minimum(j, last)
    kv_bytes = np.minimum(block_kv, cache_len - kv * block_kv) * head_dim * itemsize
    q_bytes = np.full(len(b), group * head_dim * itemsize)
    q_idx, kv_idx = np.stack([b, g], 1), np.stack([b, g, kv], 1)
    kv_block = block_kv * head_dim * itemsize
    return ([Operand(q_idx, q_bytes, group * head_dim * itemsize, False), Operand(kv_idx, kv_bytes, kv_block, False),
             Operand(kv_idx, kv_bytes, kv_block, False), Operand(q_idx, q_bytes, group * head_dim * itemsize, True)],
            (batch, kv_heads, nkv))


def plan_decode(lengths: list[int], heads: int, kv_heads: int, head_dim: int, cache_len: int, chip: Chip,
                dtype: str = "bf16", page_size: int | None = None, block_kv: int | None = None) -> Plan:
    """The fastest decode plan for sequences of ``lengths`` (after the append) in a cache of ``cache_len``.

    ``page_size``: a paged cache of that page size; blocks are whole numbers of pages.
    """
    lengths = [int(x) for x in lengths]
    check_dims(batch=len(lengths) or 0, heads=heads, kv_heads=kv_heads, head_dim=head_dim, cache_len=cache_len)
    check_lengths(lengths, cache_len, page_size)
    check_heads(heads, kv_heads)
    dtype = canonical_dtype(dtype)
    chip.peak_flops(dtype)
    if block_kv is not None:
        return _decode_plan(chip, dtype, lengths, heads, kv_heads, head_dim, cache_len, block_kv, page_size)
    unit = page_size or 8
    candidates = sorted({unit * m for m in (1, 2, 4, 8, 16, 32, 64, 128) if unit * m <= max(unit, cache_len)})
    in_b = dtype_bytes(dtype)
    group = heads // kv_heads
    capacity = chip.staging_memory.capacity_bytes
    fits = [bkv for bkv in candidates if (4 * bkv + 4 * group) * head_dim * in_b + group * head_dim * 4 <= capacity]
    best = pick_fastest([_decode_plan(chip, dtype, lengths, heads, kv_heads, head_dim, cache_len, bkv, page_size)
                         for bkv in fits])
    if best is None:
        raise AccelsimError(f"no decode block fits {chip.name}'s {chip.staging_memory.name}")
    return best


def _decode_plan(chip: Chip, dtype: str, lengths: list[int], heads: int, kv_heads: int, head_dim: int,
                 cache_len: int, block_kv: int, page_size: int | None) -> Plan:
    in_b = dtype_bytes(dtype)
    batch, group = len(lengths), heads // kv_heads
    lens = np.asarray(lengths)
    if page_size:
        if block_kv % page_size:
            raise AccelsimError(f"decode block {block_kv} is not a whole number of pages of {page_size}")
        pages_per_block = block_kv // page_size
        kv_rows = page_size * np.maximum(-(-lens // page_size), pages_per_block)
        nkv = math.ceil(math.ceil(cache_len / page_size) / pages_per_block)
    else:
        kv_rows = np.minimum(-(-lens // block_kv) * block_kv, cache_len)
        nkv = math.ceil(cache_len / block_kv)
    append = 4 * batch * kv_heads * head_dim * in_b  # read k_new, v_new; write both into the cache
    cache_rows = (math.ceil(cache_len / page_size) * page_size * batch) if page_size else cache_len * batch
    cache_bytes = cache_rows * kv_heads * head_dim * in_b  # one of K or V, whole
    q_bytes = batch * heads * head_dim * in_b
    kv_bytes = kv_heads * head_dim * in_b * float(kv_rows.sum())
    copies = append + 2 * q_bytes + 2 * kv_bytes
    main = copies
    if chip.cache_levels and not page_size:
        operands, grid = decode_operands(lens, kv_heads, group, head_dim, cache_len, block_kv, in_b)
        main = append + main_bytes_with_cache(chip, operands, copies - append, grid)
    computed = kv_heads * float((-(-lens // block_kv)).sum())
    cycles = step_cycles(chip, dtype, group, head_dim, block_kv) + step_cycles(chip, dtype, group, block_kv, head_dim)
    operand = step_operand_bytes(chip, in_b, group, head_dim, block_kv) + step_operand_bytes(chip, in_b, group, block_kv, head_dim)
    attention_levels = _level_bytes(chip, main - append, copies - append, computed * operand)
    parallel = batch * kv_heads
    exps_executed = computed * (group * block_kv + group)
    compute = waves(parallel, chip.matrix.count) * (computed * cycles + exp_cycles(chip, exps_executed)) / parallel
    first_kv = block_kv if page_size else min(block_kv, cache_len)
    attention = overlap(chip, compute, attention_levels, (group + 2 * first_kv) * head_dim * in_b,
                        group * head_dim * in_b, grid_steps=batch * kv_heads * nkv,
                        operand_bytes=2 * batch * heads * head_dim * in_b + 2 * cache_bytes)
    append_levels = _level_bytes(chip, append, append, 0.0)
    appending = overlap(chip, 0.0, append_levels, 2 * head_dim * in_b, 2 * head_dim * in_b,
                        grid_steps=batch * kv_heads,
                        operand_bytes=2 * batch * kv_heads * head_dim * in_b + 4 * cache_bytes)
    levels = {name: attention_levels[name] + append_levels[name] for name in attention_levels}
    total_cycles = attention.total_cycles + appending.total_cycles
    time_s = total_cycles / chip.clock_hz
    memory = {name: attention.memory_cycles[name] + appending.memory_cycles[name] for name in levels}
    terms = {"compute": attention.compute_cycles, **memory}
    bound = max(terms, key=terms.get)
    scores = float(lens.sum()) * heads
    flops = 4.0 * scores * head_dim
    return Plan(
        op="decode", chip=chip.name, dtype=dtype,
        shape=dict(batch=batch, heads=heads, kv_heads=kv_heads, head_dim=head_dim, cache_len=cache_len,
                   context=int(lens.max()), page_size=page_size or 0),
        blocks={"block_kv": block_kv}, grid=(batch, kv_heads, nkv), bytes_per_level=levels,
        compulsory_bytes=append + 2 * q_bytes + 2 * kv_heads * head_dim * in_b * float(lens.sum()),
        flops=flops, executed_flops=4.0 * computed * group * block_kv * head_dim,
        compute_cycles=attention.compute_cycles, memory_cycles=memory, total_cycles=total_cycles,
        time_s=time_s, bound=bound, mfu=mfu(chip, dtype, flops, time_s), mbu=mbu(chip, main, time_s),
        other_ops={"exp": scores, "exp_executed": exps_executed,
                   "kv_cache_read_bytes": 2 * kv_bytes, "kv_cache_write_bytes": append / 2},
    )
