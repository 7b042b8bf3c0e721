"""Matmul tiling: pick (bm, bn, bk) for (M, K) x (K, N) on a chip by minimising modelled time.

The kernel (kernels/matmul.py) runs a grid (i, j, k), k fastest. By Pallas's revisiting rule a
block is copied only when its index changes between consecutive steps, and each copy moves the
block's bytes clipped to the array. Summed, that gives the closed form in ``main_level_bytes``.

The search prices every candidate in one numpy pass (``matmul_batch``) and evaluates one by one only those
that can come within the near-tie window, with cache misses in closed form (``matmul_cache``);
``plan_matmul(..., reference=True)`` is the search as it was, every footprint and miss read from the
kernel's BlockSpecs and block streams, kept as what the fast path is tested against.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from accelsim.chips.spec import Chip
from accelsim.cost.blocks import BlockStream, grid_axes
from accelsim.cost.cache import level_bytes, main_bytes_on_chip
from accelsim.cost.compute import ACC_BYTES, step_cycles, step_operand_bytes, waves
from accelsim.cost.footprint import PIPELINE_BUFFERS, footprint
from accelsim.cost.timing import in_sequence, mbu, mfu, overlap
from accelsim.dtypes import canonical_dtype, dtype_bytes
from accelsim.errors import AccelsimError
from accelsim.shapes import positive_int
from accelsim.tiling.alignment import block_rule, check_block, legal_sizes
from accelsim.tiling.matmul_batch import MARGIN, candidate_times
from accelsim.tiling.matmul_cache import kernel_main_bytes
from accelsim.tiling.plan import Plan
from accelsim.tiling.sharding import Shard, shard_over_chips
from kernels.matmul import matmul_specs
from kernels.matmul_split import split_specs


def check_dims(**dims: int) -> None:
    """Reject non-positive or non-integer dimensions with a one-line error naming the argument."""
    for name, value in dims.items():
        positive_int(f"dimension {name}", value)


def grid_of(m: int, k: int, n: int, bm: int, bn: int, bk: int) -> tuple[int, int, int]:
    return math.ceil(m / bm), math.ceil(n / bn), math.ceil(k / bk)


def main_level_bytes(m: int, k: int, n: int, bm: int, bn: int, bk: int, in_bytes: float,
                     out_bytes: float, splits: int = 1, b_bytes: float | None = None) -> dict[str, float]:
    """Bytes each operand moves at the main level (read for A, B; written for C), closed form.

    Split s of K covers v_s k blocks (K_s elements). Within one (s, i), A's block (i, kb) changes at
    every step when v_s > 1, so A is read once per j; with one k block it stays put across j and is
    read once. B's block (kb, j) stays put across i only if v_s == 1 and there is one j block. C's
    block (or, split, the f32 partial block (s, i, j)) is resident across k and written once; the
    combine kernel reads every partial block once and writes C. ``b_bytes``: B's width when it differs
    from A's (weight-only quantisation: int8 or fp8 weights beside bf16 activations).
    """
    b_bytes = in_bytes if b_bytes is None else b_bytes
    gm, gn, gk = grid_of(m, k, n, bm, bn, bk)
    per = math.ceil(gk / splits)
    a = b = 0.0
    for s in range(splits):
        blocks = min(per, gk - s * per)
        k_elements = min(k, (s * per + blocks) * bk) - s * per * bk
        a += m * k_elements * in_bytes * (gn if blocks > 1 else 1)
        b += k_elements * n * b_bytes * (gm if (blocks > 1 or gn > 1) else 1)
    out = {"a": a, "b": b, "c": m * n * out_bytes}
    if splits > 1:
        out["partial"] = out["partial_read"] = splits * m * n * ACC_BYTES
    return out


def matmul_streams(m: int, k: int, n: int, bm: int, bn: int, bk: int, in_bytes: float,
                   out_bytes: float, splits: int = 1, b_bytes: float | None = None) -> list[list[BlockStream]]:
    """Each kernel's operands over its grid: (i, j, k) with A at (i, k), B at (k, j), C written at (i, j);
    split, (s, i, j, kk) with kb = min(s * per + kk, nk - 1), then the combine kernel over (i, j)."""
    b_bytes = in_bytes if b_bytes is None else b_bytes
    if splits == 1:
        grid = grid_of(m, k, n, bm, bn, bk)
        i, j, kk = grid_axes(grid)
        return [[BlockStream(grid, (i, kk), (bm, bk), (m, k), in_bytes, False),
                 BlockStream(grid, (kk, j), (bk, bn), (k, n), b_bytes, False),
                 BlockStream(grid, (i, j), (bm, bn), (m, n), out_bytes, True)]]
    gm, gn, gk = grid_of(m, k, n, bm, bn, bk)
    per = math.ceil(gk / splits)
    grid = (splits, gm, gn, per)
    s, i, j, kk = grid_axes(grid)
    kb = np.minimum(s * per + kk, gk - 1)
    partial = [BlockStream(grid, (i, kb), (bm, bk), (m, k), in_bytes, False),
               BlockStream(grid, (kb, j), (bk, bn), (k, n), b_bytes, False),
               BlockStream(grid, (s, i, j), (1, bm, bn), (splits, m, n), ACC_BYTES, True)]
    i, j = grid_axes((gm, gn))
    zero = np.zeros((1, 1), np.int64)
    combine = [BlockStream((gm, gn), (zero, i, j), (splits, bm, bn), (splits, m, n), ACC_BYTES, False),
               BlockStream((gm, gn), (i, j), (bm, bn), (m, n), out_bytes, True)]
    return [partial, combine]


def plan_matmul(m: int, k: int, n: int, chip: Chip, dtype: str = "bf16", out_dtype: str | None = None,
                blocks: dict[str, int] | None = None, b_dtype: str | None = None, reference: bool = False) -> Plan:
    """The fastest legal plan for C[M,N] = A[M,K] @ B[K,N] on ``chip`` (or the given ``blocks``). ``dtype`` is
    what the matrix unit multiplies in; ``b_dtype`` B's stored dtype where it is narrower (weight-only int8,
    fp8, int4 or fp4 weights, widened to ``dtype`` block by block). ``reference``: footprints read from the
    kernel's BlockSpecs and cache misses from the general block-stream model (the slow path the closed forms
    are tested against)."""
    check_dims(M=m, K=k, N=n)
    dtype = canonical_dtype(dtype)
    out_dtype = canonical_dtype(out_dtype or dtype)
    chip.peak_flops(dtype)  # a one-line error if the chip has no figure for this dtype
    b_dtype = canonical_dtype(b_dtype or dtype)
    shard = shard_over_chips(m, k, n, chip, dtype, out_dtype, b_dtype)
    if blocks is not None:
        return _evaluate(shard, chip, dtype, out_dtype, blocks["bm"], blocks["bn"], blocks["bk"],
                         blocks.get("splits", 1), (m, k, n), b_dtype=b_dtype, general_cache=reference)
    candidates = candidate_blocks(shard.m, k, shard.n, chip, dtype, out_dtype, b_dtype, from_specs=reference)
    if not reference:
        candidates = _contenders(shard, chip, dtype, out_dtype, candidates, (m, k, n), b_dtype)
    if chip.cache_levels:
        best = _fastest_behind_cache(shard, chip, dtype, out_dtype, candidates, (m, k, n), b_dtype, reference)
    else:
        best = pick_fastest([_evaluate(shard, chip, dtype, out_dtype, *b, (m, k, n), b_dtype=b_dtype)
                             for b in candidates])
    if best is None:
        raise AccelsimError(
            f"no legal matmul blocks for {m}x{k}x{n} {dtype} on {chip.name}: "
            f"{chip.staging_memory.name} holds {chip.staging_memory.capacity_bytes:.0f} bytes per instance")
    return best


MAX_GRID_STEPS = 1 << 21  # no sensible schedule has more; also bounds the cost of tracing it
NEAR_TIE = 1.01  # the model is not more precise than 1%


def pick_fastest(plans: list[Plan]) -> Plan | None:
    """The fastest plan; among those within 1% of it, the one with the fewest grid steps.

    Fewer, larger blocks carry less per-step overhead (loop bookkeeping, DMA issue), which the model
    leaves out, so a near-tie goes to them.
    """
    if not plans:
        return None
    fastest = min(p.time_s for p in plans)
    return min((p for p in plans if p.time_s <= fastest * NEAR_TIE), key=lambda p: (math.prod(p.grid), p.time_s))


SPLITS = (1, 2, 4, 8, 16, 32, 64)


def candidate_blocks(m: int, k: int, n: int, chip: Chip, dtype: str, out_dtype: str,
                     b_dtype: str | None = None, from_specs: bool = False) -> list[tuple[int, int, int, int]]:
    """Every (bm, bn, bk, splits) that obeys the chip's block rule and fits its staging memory. K is split
    only while the (i, j) blocks times the previous split count leave units idle (skinny products).
    ``from_specs``: each footprint read from the kernel's own BlockSpecs, not from their closed form."""
    rule = block_rule(chip)
    capacity = chip.staging_memory.capacity_bytes
    sizes = (dtype_bytes(dtype), dtype_bytes(b_dtype or dtype), dtype_bytes(out_dtype))
    out = []
    for bm, bn, bk in itertools.product(legal_sizes(m, rule.sublane, rule.power_of_two),
                                        legal_sizes(n, rule.lane, rule.power_of_two),
                                        legal_sizes(k, rule.lane, rule.power_of_two)):
        if not (check_block(rule, (bm, bk), (m, k)) and check_block(rule, (bk, bn), (k, n))
                and check_block(rule, (bm, bn), (m, n))):
            continue
        gm, gn, _ = grid_of(m, k, n, bm, bn, bk)
        for splits in SPLITS:
            if splits > 1 and (gm * gn * splits // 2 >= chip.matrix.count or not _split_valid(k, bk, splits)):
                continue
            if from_specs:
                specs = (matmul_specs(m, k, n, bm=bm, bn=bn, bk=bk, in_dtype=dtype, out_dtype=out_dtype,
                                      b_dtype=b_dtype) if splits == 1 else
                         split_specs(m, k, n, bm=bm, bn=bn, bk=bk, splits=splits, in_dtype=dtype, b_dtype=b_dtype))
                held = footprint(specs, rule.register_accumulator_bytes)
            else:
                held = _footprint(bm, bn, bk, splits, *sizes, rule.register_accumulator_bytes)
            if held <= capacity:
                out.append((bm, bn, bk, splits))
    small_grids = [b for b in out if math.prod(grid_of(m, k, n, *b[:3])) <= MAX_GRID_STEPS]
    return small_grids or out


def _split_valid(k: int, bk: int, splits: int) -> bool:
    """``split_k_valid`` in plain integers (it is called for every candidate; Pallas's ``cdiv`` checks for
    symbolic dims each time)."""
    blocks = -(-k // bk)
    return 1 <= splits <= blocks and (splits - 1) * -(-blocks // splits) < blocks


def _footprint(bm: int, bn: int, bk: int, splits: int, in_b: float, b_b: float, out_b: float,
               register_bytes: float) -> float:
    """``footprint`` of ``matmul_specs`` / ``split_specs`` in closed form: double-buffered A, B and C (an f32
    partial when split) blocks, and the f32 accumulator, held in registers where the chip has a budget."""
    accumulator = bm * bn * ACC_BYTES
    buffers = 0.0
    for elements, itemsize in ((bm * bk, in_b), (bk * bn, b_b), (bm * bn, out_b if splits == 1 else ACC_BYTES)):
        buffers += PIPELINE_BUFFERS * elements * itemsize
    if register_bytes:
        return math.inf if accumulator > register_bytes else buffers
    return buffers + accumulator


def _contenders(shard: Shard, chip: Chip, dtype: str, out_dtype: str, candidates: list[tuple[int, int, int, int]],
                full: tuple[int, int, int], b_dtype: str) -> list[tuple[int, int, int, int]]:
    """The candidates (in their order) that can be within ``NEAR_TIE`` of the fastest plan, from one numpy pass
    (``matmul_batch``). Without a cache its times are the plans' own; behind one they are floors, and any plan's
    exact time bounds the fastest from above. ``MARGIN`` covers the two passes' different float rounding."""
    if len(candidates) < 2:
        return candidates
    times = candidate_times(shard, chip, dtype, full[1], np.asarray(candidates), dtype_bytes(dtype),
                            dtype_bytes(b_dtype), dtype_bytes(out_dtype))
    bound = float(times.min())
    if chip.cache_levels:
        first = candidates[int(np.argmin(times))]
        bound = _evaluate(shard, chip, dtype, out_dtype, *first, full, b_dtype=b_dtype).time_s
    limit = bound * NEAR_TIE * (1 + MARGIN)
    return [c for c, t in zip(candidates, times) if t <= limit]


def _fastest_behind_cache(shard: Shard, chip: Chip, dtype: str, out_dtype: str,
                          candidates: list[tuple[int, int, int, int]], full: tuple[int, int, int],
                          b_dtype: str, general_cache: bool = False) -> Plan | None:
    """``pick_fastest`` over the candidates, evaluating the cache model only where it can matter: a plan
    priced with compulsory main-memory bytes is never slower than with its cache misses, so candidates
    whose optimistic time is past the near-tie window of the fastest exact plan cannot win."""
    optimistic = sorted(((_evaluate(shard, chip, dtype, out_dtype, *b, full, perfect_cache=True, b_dtype=b_dtype), b)
                         for b in candidates), key=lambda pair: pair[0].time_s)
    exact: list[Plan] = []
    for bound, blocks in optimistic:
        if exact and bound.time_s > min(p.time_s for p in exact) * NEAR_TIE:
            break
        exact.append(_evaluate(shard, chip, dtype, out_dtype, *blocks, full, b_dtype=b_dtype,
                               general_cache=general_cache))
    return pick_fastest(exact)


def _evaluate(shard: Shard, chip: Chip, dtype: str, out_dtype: str, bm: int, bn: int, bk: int, splits: int,
              full: tuple[int, int, int], perfect_cache: bool = False, b_dtype: str | None = None,
              general_cache: bool = False) -> Plan:
    """The plan of one chip's share ``shard`` of the (M, K, N) = ``full`` matmul with (bm, bn, bk) blocks and
    K cut into ``splits`` ranges; ``perfect_cache``: main memory moves only the compulsory bytes (a lower
    bound on the plan's time); ``general_cache``: misses from the general stream model, not their closed form."""
    m, k, n = shard.m, full[1], shard.n
    in_b, out_b, b_b = dtype_bytes(dtype), dtype_bytes(out_dtype), dtype_bytes(b_dtype or dtype)
    gm, gn, gk = grid_of(m, k, n, bm, bn, bk)
    per = math.ceil(gk / splits)
    copies = main_level_bytes(m, k, n, bm, bn, bk, in_b, out_b, splits, b_b)
    compulsory = m * k * in_b + k * n * b_b + m * n * out_b
    general = chip.cache_levels and not perfect_cache and general_cache
    kernels = matmul_streams(m, k, n, bm, bn, bk, in_b, out_b, splits, b_b) if general else []
    product_copies = copies["a"] + copies["b"] + copies.get("partial", copies["c"])
    main = product_copies
    if chip.cache_levels:
        main = (compulsory - m * n * out_b + copies.get("partial", copies["c"]) if perfect_cache
                else main_bytes_on_chip(chip, kernels[0]) if general
                else kernel_main_bytes(chip, m, k, n, bm, bn, bk, splits, in_b, b_b, copies))
    levels = level_bytes(chip, main, product_copies, gm * gn * gk * step_operand_bytes(chip, in_b, bm, bk, bn))
    compute = waves(splits * gm * gn, chip.matrix.count) * gk * step_cycles(chip, dtype, bm, bk, bn) / splits
    prologue = min(bm, m) * min(bk, k) * in_b + min(bk, k) * min(bn, n) * b_b
    last_block = (m - (gm - 1) * bm) * (n - (gn - 1) * bn)
    timings = [overlap(chip, compute, levels, prologue, last_block * (ACC_BYTES if splits > 1 else out_b),
                       shard.link_bytes, grid_steps=splits * gm * gn * per,
                       operand_bytes=m * k * in_b + k * n * b_b + (copies.get("partial") or m * n * out_b),
                       parallel_blocks=splits * gm * gn)]
    if splits > 1:
        combine_copies = copies["partial_read"] + copies["c"]
        combine_main = main_bytes_on_chip(chip, kernels[1]) if general else combine_copies
        timings.append(overlap(chip, 0.0, level_bytes(chip, combine_main, combine_copies, 0.0),
                               splits * min(bm, m) * min(bn, n) * ACC_BYTES, last_block * out_b,
                               grid_steps=gm * gn, operand_bytes=combine_copies, parallel_blocks=gm))
    timing = in_sequence(chip, timings)
    flops = 2.0 * full[0] * full[2] * k
    return Plan(
        op="matmul", chip=chip.name, dtype=dtype, shape={"M": full[0], "K": k, "N": full[2]},
        blocks={"bm": bm, "bn": bn, "bk": bk, "splits": splits},
        grid=(gm, gn, gk) if splits == 1 else (splits, gm, gn, per), bytes_per_level=timing.bytes_per_level,
        compulsory_bytes=compulsory, flops=flops, executed_flops=2.0 * gm * gn * gk * bm * bn * bk,
        compute_cycles=timing.compute_cycles, memory_cycles=timing.memory_cycles, total_cycles=timing.total_cycles,
        time_s=timing.time_s, bound=timing.bound, mfu=mfu(chip, dtype, flops / shard.chips, timing.time_s),
        mbu=mbu(chip, timing.bytes_per_level[chip.main_memory.name], timing.time_s), chips_needed=shard.chips,
        interconnect_s=timing.interconnect_cycles / chip.clock_hz, notes=shard.notes(chip),
    )
