"""Matmul tiling: pick (bm, bn, bk) for (M, K) x (K, N) on a chip by minimising modelled time.

The kernel (kernels/matmul.py) runs a grid (i, j, k), k fastest. By Pallas's revisiting rule a
block is copied only when its index changes between consecutive steps, and each copy moves the
block's bytes clipped to the array. Summed, that gives the closed form in ``main_level_bytes``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from accelsim.chips.spec import Chip
from accelsim.cost.blocks import BlockStream, grid_axes
from accelsim.cost.cache import level_bytes, main_bytes_on_chip
from accelsim.cost.compute import step_cycles, step_operand_bytes, waves
from accelsim.cost.footprint import footprint
from accelsim.cost.timing import mbu, mfu, overlap
from accelsim.dtypes import canonical_dtype, dtype_bytes
from accelsim.errors import AccelsimError
from accelsim.shapes import positive_int
from accelsim.tiling.alignment import block_rule, check_block, legal_sizes
from accelsim.tiling.plan import Plan
from kernels.matmul import matmul_specs


def check_dims(**dims: int) -> None:
    """Reject non-positive or non-integer dimensions with a one-line error naming the argument."""
    for name, value in dims.items():
        positive_int(f"dimension {name}", value)


def grid_of(m: int, k: int, n: int, bm: int, bn: int, bk: int) -> tuple[int, int, int]:
    return math.ceil(m / bm), math.ceil(n / bn), math.ceil(k / bk)


def main_level_bytes(m: int, k: int, n: int, bm: int, bn: int, bk: int, in_bytes: float,
                     out_bytes: float) -> dict[str, float]:
    """Bytes each operand moves at the main level (read for A, B; written for C), closed form.

    A's block (i, k) changes every step when there are several k blocks, so A is read once per j;
    with one k block it stays put across j and A is read once. B's block (k, j) stays put only if
    both the k and j grids are 1. C's block (i, j) is resident across k and written once.
    """
    gm, gn, gk = grid_of(m, k, n, bm, bn, bk)
    a_passes = gn if gk > 1 else 1
    b_passes = gm if (gk > 1 or gn > 1) else 1
    return {"a": m * k * in_bytes * a_passes, "b": k * n * in_bytes * b_passes, "c": m * n * out_bytes}


def matmul_streams(m: int, k: int, n: int, bm: int, bn: int, bk: int, in_bytes: float,
                   out_bytes: float) -> list[BlockStream]:
    """The kernel's operands over its grid (i, j, k): A at (i, k), B at (k, j), C written at (i, j)."""
    grid = grid_of(m, k, n, bm, bn, bk)
    i, j, kk = grid_axes(grid)
    return [BlockStream(grid, (i, kk), (bm, bk), (m, k), in_bytes, False),
            BlockStream(grid, (kk, j), (bk, bn), (k, n), in_bytes, False),
            BlockStream(grid, (i, j), (bm, bn), (m, n), out_bytes, True)]


def plan_matmul(m: int, k: int, n: int, chip: Chip, dtype: str = "bf16", out_dtype: str | None = None,
                blocks: dict[str, int] | None = None) -> Plan:
    """The fastest legal plan for C[M,N] = A[M,K] @ B[K,N] on ``chip`` (or the given ``blocks``)."""
    check_dims(M=m, K=k, N=n)
    dtype = canonical_dtype(dtype)
    out_dtype = canonical_dtype(out_dtype or dtype)
    chip.peak_flops(dtype)  # a one-line error if the chip has no figure for this dtype
    shard = _shard_over_chips(m, k, n, chip, dtype, out_dtype)
    if blocks is not None:
        return _evaluate(shard, chip, dtype, out_dtype, blocks["bm"], blocks["bn"], blocks["bk"], (m, k, n))
    candidates = candidate_blocks(shard.m, k, shard.n, chip, dtype, out_dtype)
    if chip.cache_levels:
        best = _fastest_behind_cache(shard, chip, dtype, out_dtype, candidates, (m, k, n))
    else:
        best = pick_fastest([_evaluate(shard, chip, dtype, out_dtype, *b, (m, k, n)) for b in candidates])
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


def candidate_blocks(m: int, k: int, n: int, chip: Chip, dtype: str, out_dtype: str) -> list[tuple[int, int, int]]:
    """Every (bm, bn, bk) that obeys the chip's block rule and fits its staging memory."""
    rule = block_rule(chip)
    capacity = chip.staging_memory.capacity_bytes
    out = []
    for bm, bn, bk in itertools.product(legal_sizes(m, rule.sublane, rule.power_of_two),
                                        legal_sizes(n, rule.lane, rule.power_of_two),
                                        legal_sizes(k, rule.lane, rule.power_of_two)):
        legal = (check_block(rule, (bm, bk), (m, k)) and check_block(rule, (bk, bn), (k, n))
                 and check_block(rule, (bm, bn), (m, n)))
        specs = matmul_specs(m, k, n, bm=bm, bn=bn, bk=bk, in_dtype=dtype, out_dtype=out_dtype)
        if legal and footprint(specs, rule.register_accumulator_bytes) <= capacity:
            out.append((bm, bn, bk))
    small_grids = [b for b in out if math.prod(grid_of(m, k, n, *b)) <= MAX_GRID_STEPS]
    return small_grids or out


def _fastest_behind_cache(shard: "Shard", chip: Chip, dtype: str, out_dtype: str,
                          candidates: list[tuple[int, int, int]], full: tuple[int, int, int]) -> Plan | None:
    """``pick_fastest`` over the candidates, evaluating the cache model only where it can matter: a plan
    priced with compulsory main-memory bytes is never slower than with its cache misses, so candidates
    whose optimistic time is past the near-tie window of the fastest exact plan cannot win."""
    optimistic = sorted(((_evaluate(shard, chip, dtype, out_dtype, *b, full, perfect_cache=True), b) for b in candidates),
                        key=lambda pair: pair[0].time_s)
    exact: list[Plan] = []
    for bound, blocks in optimistic:
        if exact and bound.time_s > min(p.time_s for p in exact) * NEAR_TIE:
            break
        exact.append(_evaluate(shard, chip, dtype, out_dtype, *blocks, full))
    return pick_fastest(exact)


def _evaluate(shard: "Shard", chip: Chip, dtype: str, out_dtype: str, bm: int, bn: int, bk: int,
              full: tuple[int, int, int], perfect_cache: bool = False) -> Plan:
    """The plan of one chip's share ``shard`` of the (M, K, N) = ``full`` matmul with (bm, bn, bk) blocks;
    ``perfect_cache``: main memory moves only the compulsory bytes (a lower bound on the plan's time)."""
    m, k, n = shard.m, full[1], shard.n
    chips_needed, link_bytes = shard.chips, shard.link_bytes
    in_b, out_b = dtype_bytes(dtype), dtype_bytes(out_dtype)
    gm, gn, gk = grid_of(m, k, n, bm, bn, bk)
    steps = gm * gn * gk
    copies = sum(main_level_bytes(m, k, n, bm, bn, bk, in_b, out_b).values())
    main_total = copies
    if chip.cache_levels:
        main_total = ((m * k + k * n) * in_b + m * n * out_b if perfect_cache
                      else main_bytes_on_chip(chip, matmul_streams(m, k, n, bm, bn, bk, in_b, out_b)))
    bytes_per_level = level_bytes(chip, main_total, copies, steps * step_operand_bytes(chip, in_b, bm, bk, bn))
    compute = waves(gm * gn, chip.matrix.count) * gk * step_cycles(chip, dtype, bm, bk, bn)
    prologue = (min(bm, m) * min(bk, k) + min(bk, k) * min(bn, n)) * in_b
    epilogue = (m - (gm - 1) * bm) * (n - (gn - 1) * bn) * out_b
    timing = overlap(chip, compute, bytes_per_level, prologue, epilogue, link_bytes, grid_steps=steps,
                     operand_bytes=(m * k + k * n) * in_b + m * n * out_b)
    flops = 2.0 * full[0] * full[2] * k
    notes = ()
    if chips_needed > 1:
        rows = f"M split {shard.row_groups} ways, " if shard.row_groups > 1 else ""
        notes = (f"operands exceed one chip's {chip.main_memory.name}: {rows}N split over "
                 f"{chips_needed // shard.row_groups} chips, A all-gathered over "
                 f"{chip.links[0].name if chip.links else 'no modelled link'}",)
    return Plan(
        op="matmul", chip=chip.name, dtype=dtype, shape={"M": full[0], "K": k, "N": full[2]},
        blocks={"bm": bm, "bn": bn, "bk": bk}, grid=(gm, gn, gk), bytes_per_level=bytes_per_level,
        compulsory_bytes=(m * k + k * n) * in_b + m * n * out_b, flops=flops,
        executed_flops=2.0 * steps * bm * bn * bk, compute_cycles=timing.compute_cycles,
        memory_cycles=timing.memory_cycles, total_cycles=timing.total_cycles, time_s=timing.time_s,
        bound=timing.bound, mfu=mfu(chip, dtype, flops / chips_needed, timing.time_s),
        mbu=mbu(chip, main_total, timing.time_s), chips_needed=chips_needed,
        interconnect_s=timing.interconnect_cycles / chip.clock_hz, notes=notes,
    )


@dataclass(frozen=True)
class Shard:
    """One chip's share of a matmul too large for one chip: rows ``m`` of A and columns ``n`` of B,
    ``chips`` = row groups x column groups, and the bytes of A each chip receives over the links."""

    m: int
    n: int
    chips: int
    row_groups: int
    link_bytes: float


def _shard_over_chips(m: int, k: int, n: int, chip: Chip, dtype: str, out_dtype: str) -> Shard:
    """Chips needed when A, B and C exceed one chip's main memory: N is split with A replicated; when A
    alone does not fit a chip, its rows are split first, into groups whose share fills half a chip."""
    in_b, out_b = dtype_bytes(dtype), dtype_bytes(out_dtype)
    capacity = chip.main_memory.total_capacity_bytes
    if (m * k + k * n) * in_b + m * n * out_b <= capacity:
        return Shard(m, n, 1, 1, 0.0)
    if not chip.links:
        raise AccelsimError(f"{chip.name} needs several chips for a {m}x{k}x{n} matmul but its file lists no "
                            "chip-to-chip link")
    row_groups = 1 if m * k * in_b < capacity else math.ceil(m * k * in_b / (capacity / 2))
    rows = math.ceil(m / row_groups)
    replicated = rows * k * in_b
    split = k * n * in_b + rows * n * out_b
    columns = max(1, math.ceil(split / (capacity - replicated)))
    return Shard(rows, math.ceil(n / columns), row_groups * columns, row_groups,
                 replicated * (columns - 1) / columns)
