"""Attention tiling: flash prefill (block_q, block_kv), decode over a KV cache (block_kv), and unfused attention.

Flash prefill runs a grid (B, G, nq, nkv), kv blocks fastest; a Q block holds all ``group = H / G``
query heads of one kv head, so each K/V block is copied once per group. Causal grids clamp the kv
block index to the last block a query block needs, so blocks above the diagonal are neither
computed nor copied. Decode runs an append kernel (grid (B, G)) and an attention kernel (grid
(B, G, nkv)) whose kv index is clamped to each sequence's last valid block.

Copies follow Pallas's revisiting rule (copy when the block index changes) and move the block's
bytes clipped to the array. The formulas here are written from the grid definition, independently
of the kernels; tests check them against the traced kernels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from accelsim.chips.spec import Chip
from accelsim.cost.blocks import BlockStream, check_size, grid_axes
from accelsim.cost.cache import level_bytes, main_bytes_on_chip, misses_behind_cache, wave_misses
from accelsim.cost.footprint import footprint
from accelsim.cost.compute import ACC_BYTES, exp_cycles, step_cycles, step_operand_bytes, waves
from accelsim.cost.timing import mbu, mfu, overlap
from accelsim.dtypes import canonical_dtype, dtype_bytes
from accelsim.errors import AccelsimError
from accelsim.tiling.alignment import block_rule, legal_sizes
from accelsim.tiling.matmul import MAX_GRID_STEPS, check_dims, pick_fastest, plan_matmul
from accelsim.tiling.plan import Plan
from kernels.attention import flash_specs


def check_heads(heads: int, kv_heads: int) -> int:
    """The GQA group size; a one-line error when kv heads do not divide query heads."""
    if heads % kv_heads:
        raise AccelsimError(f"kv heads ({kv_heads}) must divide query heads ({heads})")
    return heads // kv_heads


def causal_last_block(qi: np.ndarray, block_q: int, block_kv: int, q_len: int, nkv: int) -> np.ndarray:
    """Last kv block query block ``qi`` needs (top-left aligned causal mask, as jax.nn uses)."""
    return np.minimum(nkv - 1, (np.minimum((qi + 1) * block_q, q_len) - 1) // block_kv)


def flash_kv_rows(q_len: int, kv_len: int, block_q: int, block_kv: int, causal: bool) -> tuple[int, int]:
    """(kv rows copied per (batch, kv head), kv blocks computed per (batch, kv head)), closed form.

    Query block qi sweeps kv blocks 0..last(qi); a sweep copies min(Skv, (last+1)*block_kv) rows,
    except that a sweep ending on block 0 leaves block 0 resident for the next sweep's first step.
    """
    nq, nkv = math.ceil(q_len / block_q), math.ceil(kv_len / block_kv)
    last = causal_last_block(np.arange(nq), block_q, block_kv, q_len, nkv) if causal else np.full(nq, nkv - 1)
    rows = np.minimum(kv_len, (last + 1) * block_kv).sum()
    rows -= (last[:-1] == 0).sum() * min(block_kv, kv_len)
    return int(rows), int((last + 1).sum())


def flash_streams(batch: int, kv_heads: int, group: int, q_len: int, kv_len: int, head_dim: int,
                  block_q: int, block_kv: int, causal: bool, itemsize: float) -> list[BlockStream]:
    """Q, K, V, O over the flash grid (B, G, nq, nkv), with the kernel's block shapes and index maps."""
    nq, nkv = math.ceil(q_len / block_q), math.ceil(kv_len / block_kv)
    grid = (batch, kv_heads, nq, nkv)
    b, g, qi, j = grid_axes(grid)
    if causal:
        check_size((nq, nkv), "the causal attention mask")
    kv = np.minimum(j, causal_last_block(qi, block_q, block_kv, q_len, nkv)) if causal else j
    zero = np.zeros((1,) * 4, np.int64)
    q_shape, kv_shape = (batch, kv_heads, group, q_len, head_dim), (batch, kv_heads, kv_len, head_dim)
    q_block, kv_block = (1, 1, group, block_q, head_dim), (1, 1, block_kv, head_dim)
    q_index, kv_index = (b, g, zero, qi, zero), (b, g, kv, zero)
    return [BlockStream(grid, q_index, q_block, q_shape, itemsize, False),
            BlockStream(grid, kv_index, kv_block, kv_shape, itemsize, False),
            BlockStream(grid, kv_index, kv_block, kv_shape, itemsize, False),
            BlockStream(grid, q_index, q_block, q_shape, itemsize, True)]


def causal_kv_misses(units: int, rows: int, sq: int, skv: int, bq: int, bkv: int, d: int,
                     itemsize: float) -> tuple[float, float]:
    """``wave_misses`` of a causal K (or V) stream in closed form, without its grid.

    Parallel points (b, g, qi) run row-major in waves of ``units``; point qi reads kv blocks 0..last(qi), and
    last is non-decreasing in qi, so a wave touches, per (b, g) row it covers, the blocks up to last of the
    row's final qi in the wave. At sequential step j a row's points hold min(j, last(qi)): the distinct last
    values below j in its qi range, plus one if the range's final last reaches j."""
    nq, nkv = math.ceil(sq / bq), math.ceil(skv / bkv)
    last = causal_last_block(np.arange(nq), bq, bkv, sq, nkv)
    block_bytes = itemsize * np.minimum(bkv, skv - np.arange(nkv) * bkv) * d
    upto = np.cumsum(block_bytes)
    lo = np.arange(0, rows * nq, units, dtype=np.int64)
    hi = np.minimum(lo + units, rows * nq) - 1
    spanned = hi // nq - lo // nq
    first, final = lo % nq, hi % nq
    misses = float((spanned * upto[last[-1]] + upto[last[final]]).sum())
    j = np.arange(nkv)[:, None]
    new_value = np.concatenate([[True], last[1:] != last[:-1]])
    below = np.cumsum(new_value[None, :] & (last[None, :] < j), axis=1)

    def held(a, c):
        return below[:, c] - below[:, a] + (last[a] < j) + (last[c] >= j)

    zero, end = np.zeros_like(first), np.full_like(first, nq - 1)
    counts = np.where(spanned == 0, held(first, final),
                      held(first, end) + (spanned - 1) * held(zero, end) + held(zero, final))
    return misses, float(counts.max()) * (bkv * d * itemsize)


def flash_main_bytes(chip: Chip, q_stream: BlockStream, sq: int, skv: int, bq: int, bkv: int, d: int,
                     itemsize: float, q_bytes: float, kv_bytes: float) -> float:
    """``main_bytes_on_chip`` of the causal flash kernel's Q, K, V and O streams, K and V by ``causal_kv_misses``."""
    rows = q_stream.grid[0] * q_stream.grid[1]
    kv = causal_kv_misses(chip.matrix.count, rows, sq, skv, bq, bkv, d, itemsize)
    return misses_behind_cache([wave_misses(q_stream, chip.matrix.count), kv, kv], [q_bytes, kv_bytes, kv_bytes],
                               q_bytes, chip.cache_levels[0].total_capacity_bytes)


def _score_block_candidates(chip: Chip, length: int) -> list[int]:
    rule = block_rule(chip)
    sizes = legal_sizes(length, rule.sublane, rule.power_of_two, cap=2048)
    return [s for s in sizes if s % rule.sublane == 0 or s == length]


def _attention_block_cost(chip: Chip, dtype: str, rows: int, block_kv: int, head_dim: int, in_b: float) -> tuple[float, float]:
    """(cycles, operand bytes) of one computed (Q block, KV block) step: S = Q K^T and O += P V."""
    cycles = step_cycles(chip, dtype, rows, head_dim, block_kv) + step_cycles(chip, dtype, rows, block_kv, head_dim)
    operand = step_operand_bytes(chip, in_b, rows, head_dim, block_kv) + step_operand_bytes(chip, in_b, rows, block_kv, head_dim)
    return cycles, operand


def plan_attention(batch: int, heads: int, kv_heads: int, q_len: int, kv_len: int, head_dim: int, causal: bool,
                   chip: Chip, dtype: str = "bf16", blocks: dict[str, int] | None = None) -> Plan:
    """The fastest flash-attention plan (or the given ``blocks``) on ``chip``."""
    check_dims(batch=batch, heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, head_dim=head_dim)
    group = check_heads(heads, kv_heads)
    dtype = canonical_dtype(dtype)
    chip.peak_flops(dtype)
    shape = dict(batch=batch, heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, head_dim=head_dim)
    if blocks is not None:
        return _flash_plan(chip, dtype, shape, group, causal, blocks["block_q"], blocks["block_kv"])
    rule = block_rule(chip)
    capacity = chip.staging_memory.capacity_bytes
    pairs = [(bq, bkv) for bq in _score_block_candidates(chip, q_len) for bkv in _score_block_candidates(chip, kv_len)]
    steps = {p: batch * kv_heads * math.ceil(q_len / p[0]) * math.ceil(kv_len / p[1]) for p in pairs}
    cap = max(MAX_GRID_STEPS, min(steps.values()))  # no sensible schedule has more; also bounds counting it
    held = {}
    for bq, bkv in (p for p in pairs if steps[p] <= cap):
        specs = flash_specs(batch, heads, kv_heads, q_len, kv_len, head_dim, causal=causal, block_q=bq,
                            block_kv=bkv, dtype=dtype)
        held[(bq, bkv)] = footprint(specs, rule.register_accumulator_bytes, group * bq * bkv * ACC_BYTES)  # + S tile
    plans = [_flash_plan(chip, dtype, shape, group, causal, bq, bkv) for (bq, bkv), need in held.items()
             if need <= capacity]
    best = pick_fastest(plans)
    if best is None:  # even the smallest blocks overflow one unit's memory (a 48 KiB Cerebras PE, say)
        bq, bkv = min(held, key=lambda p: (held[p], steps[p]))
        best = _flash_plan(chip, dtype, shape, group, causal, bq, bkv)
        note = (f"the smallest blocks ({bq}x{bkv}, {group} heads per kv head) exceed one unit's "
                f"{chip.staging_memory.name} ({chip.staging_memory.capacity_bytes:.0f} B): assumed to span neighbouring units")
        best = dataclasses.replace(best, notes=best.notes + (note,))
    return best


def attention_flops(batch: int, heads: int, q_len: int, kv_len: int, head_dim: int, causal: bool) -> tuple[float, float]:
    """(useful FLOPs of QK^T + PV, useful softmax exponentials): 4*D FLOPs and one exp per unmasked score."""
    if causal:  # sum over query rows i of min(i + 1, kv_len), in closed form (no array of q_len rows)
        full = min(q_len, kv_len)
        scores = float(full * (full + 1) // 2 + (q_len - full) * kv_len)
    else:
        scores = float(q_len) * kv_len
    return 4.0 * batch * heads * head_dim * scores, batch * heads * scores


def _flash_plan(chip: Chip, dtype: str, shape: dict, group: int, causal: bool, bq: int, bkv: int) -> Plan:
    b, h, g, sq, skv, d = (shape[k] for k in ("batch", "heads", "kv_heads", "q_len", "kv_len", "head_dim"))
    in_b = dtype_bytes(dtype)
    nq, nkv = math.ceil(sq / bq), math.ceil(skv / bkv)
    rows_copied, computed = flash_kv_rows(sq, skv, bq, bkv, causal)
    q_bytes = b * h * sq * d * in_b
    kv_bytes = b * g * rows_copied * d * in_b
    copies = 2 * q_bytes + 2 * kv_bytes
    grid = (b, g, nq, nkv)
    main = copies
    if chip.cache_levels:
        streams = flash_streams(b, g, group, sq, skv, d, bq, bkv, causal, in_b)
        main = (flash_main_bytes(chip, streams[0], sq, skv, bq, bkv, d, in_b, q_bytes, kv_bytes) if causal
                else main_bytes_on_chip(chip, streams))
    computed_total = b * g * computed
    step_c, step_bytes = _attention_block_cost(chip, dtype, group * bq, bkv, d, in_b)
    levels = level_bytes(chip, main, copies, computed_total * step_bytes)
    parallel = b * g * nq
    exps_executed = computed_total * (group * bq * bkv + group * bq)
    compute = waves(parallel, chip.matrix.count) * (computed_total * step_c + exp_cycles(chip, exps_executed)) / parallel
    prologue = (group * min(bq, sq) + 2 * min(bkv, skv)) * d * in_b
    epilogue = group * (sq - (nq - 1) * bq) * d * in_b
    timing = overlap(chip, compute, levels, prologue, epilogue, grid_steps=math.prod(grid),
                     operand_bytes=2 * (b * h * sq + b * g * skv) * d * in_b, parallel_blocks=parallel)
    flops, exps = attention_flops(b, h, sq, skv, d, causal)
    rows = group * bq
    return Plan(
        op="attention", chip=chip.name, dtype=dtype, shape={**shape, "causal": int(causal)},
        blocks={"block_q": bq, "block_kv": bkv}, grid=grid, bytes_per_level=levels,
        compulsory_bytes=2 * q_bytes + 2 * b * g * skv * d * in_b, flops=flops,
        executed_flops=4.0 * computed_total * rows * bkv * d, compute_cycles=timing.compute_cycles,
        memory_cycles=timing.memory_cycles, total_cycles=timing.total_cycles, time_s=timing.time_s,
        bound=timing.bound, mfu=mfu(chip, dtype, flops, timing.time_s), mbu=mbu(chip, main, timing.time_s),
        other_ops={"exp": exps, "exp_executed": exps_executed},
    )


def plan_unfused_attention(batch: int, heads: int, kv_heads: int, q_len: int, kv_len: int, head_dim: int,
                           causal: bool, chip: Chip, dtype: str = "bf16") -> Plan:
    """Modelled, not executed: S = QK^T materialised, softmax as its own pass, then P V.

    S (f32) and P (dtype) live in the staging level if all of S fits there, else in main memory.
    Each of the B*H heads runs the two matmuls with the chip's matmul plan.
    """
    check_dims(batch=batch, heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, head_dim=head_dim)
    check_heads(heads, kv_heads)
    dtype = canonical_dtype(dtype)
    in_b = dtype_bytes(dtype)
    heads_total = batch * heads
    qk = plan_matmul(q_len, head_dim, kv_len, chip, dtype, out_dtype="f32")
    pv = plan_matmul(q_len, kv_len, head_dim, chip, dtype)
    s_bytes = heads_total * q_len * kv_len * ACC_BYTES
    p_bytes = heads_total * q_len * kv_len * in_b
    softmax_bytes = s_bytes + p_bytes  # read S, write P
    s_level = chip.staging_memory if s_bytes <= chip.staging_memory.total_capacity_bytes else chip.main_memory
    levels: dict[str, float] = {}
    for plan in (qk, pv):
        for name, value in plan.bytes_per_level.items():
            levels[name] = levels.get(name, 0.0) + value * heads_total
    if s_level is not chip.main_memory:  # S and P never leave the chip
        levels[chip.main_memory.name] -= (s_bytes + p_bytes) * 1.0
        levels[s_level.name] = levels.get(s_level.name, 0.0) + s_bytes + p_bytes
    levels[s_level.name] = levels.get(s_level.name, 0.0) + softmax_bytes
    compute = (qk.compute_cycles + pv.compute_cycles) * heads_total
    timing = overlap(chip, compute, levels)
    flops, exps = attention_flops(batch, heads, q_len, kv_len, head_dim, causal)
    return Plan(
        op="attention_unfused", chip=chip.name, dtype=dtype,
        shape=dict(batch=batch, heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, head_dim=head_dim,
                   causal=int(causal)),
        blocks={"qk": qk.blocks, "pv": pv.blocks}, grid=(), bytes_per_level=levels,
        compulsory_bytes=(2 * heads_total * q_len * head_dim + 2 * batch * kv_heads * kv_len * head_dim) * in_b,
        flops=flops, executed_flops=4.0 * heads_total * q_len * kv_len * head_dim,
        compute_cycles=timing.compute_cycles, memory_cycles=timing.memory_cycles, total_cycles=timing.total_cycles,
        time_s=timing.time_s, bound=timing.bound, mfu=mfu(chip, dtype, flops, timing.time_s),
        mbu=mbu(chip, levels[chip.main_memory.name], timing.time_s),
        other_ops={"exp": heads_total * float(q_len) * kv_len}, notes=(f"S = QK^T kept in {s_level.name}",),
    )
