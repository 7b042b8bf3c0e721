"""Modelled time of many matmul block choices in one numpy pass, to prune the candidates a plan search
evaluates one by one.

``candidate_times`` follows ``accelsim.tiling.matmul._evaluate`` term by term (copies by split, operand
traffic, wave-quantised compute, double-buffered overlap, the combine kernel of a split K), with main memory
moving every copy on a chip without a cache and only the compulsory bytes behind one (a floor). It decides
nothing: the plan search keeps every candidate within a margin of the window it could win in and prices
those one by one.
"""

from __future__ import annotations

import numpy as np

from accelsim.chips.spec import Chip
from accelsim.cost.cache import level_bytes
from accelsim.cost.compute import ACC_BYTES, step_cycles, step_operand_bytes
from accelsim.cost.fabric import fabric_cycles
from accelsim.tiling.plan import ChipMemo
from accelsim.tiling.sharding import Shard

MARGIN = 1e-9  # relative: numpy's and Python's float rounding of the same formula differ by far less
_STEPS = ChipMemo(1 << 18)


def _step_costs(chip: Chip, dtype: str, in_b: float, m: int, k: int, n: int) -> tuple[float, float]:
    """(cycles, operand bytes) of one block product, remembered per chip: a systolic fold count is slow to
    recompute and the same block shapes recur across every plan on a chip."""
    return _STEPS.get(chip, (dtype, in_b, m, k, n),
                      lambda: (step_cycles(chip, dtype, m, k, n), step_operand_bytes(chip, in_b, m, k, n)))


def _cdiv(a, b):
    return -(-a // b)


def _overlap_cycles(chip: Chip, compute, levels: dict[str, np.ndarray], prologue, epilogue, link_bytes: float,
                    grid_steps, operand_bytes, parallel_blocks) -> np.ndarray:
    bandwidth = {level.name: level.bandwidth_bytes_per_s for level in chip.memory}
    steady = np.asarray(compute, np.float64)
    for name, moved in levels.items():
        steady = np.maximum(steady, moved / bandwidth[name] * chip.clock_hz)
    main_bw = chip.main_memory.bandwidth_bytes_per_s / chip.clock_hz
    link_bw = chip.interconnect_bytes_per_s
    link = link_bytes / link_bw * chip.clock_hz if link_bytes and link_bw else 0.0
    per_step = chip.step_overhead_s + (operand_bytes / chip.step_operand_bytes_per_s
                                       if chip.step_operand_bytes_per_s else 0.0)
    steps = np.maximum(grid_steps - 1, 0) * per_step * chip.clock_hz
    return prologue / main_bw + steady + epilogue / main_bw + link + steps + fabric_cycles(chip, parallel_blocks)


def candidate_times(shard: Shard, chip: Chip, dtype: str, k: int, blocks: np.ndarray, in_b: float, b_b: float,
                    out_b: float) -> np.ndarray:
    """Seconds of each (bm, bn, bk, splits) row of ``blocks``: exact on a chip without a cache, and the
    optimistic floor (main memory moves the compulsory bytes) behind one."""
    m, n = shard.m, shard.n
    bm, bn, bk, splits = (blocks[:, c].astype(np.int64) for c in range(4))
    gm, gn, gk = _cdiv(m, bm), _cdiv(n, bn), _cdiv(k, bk)
    per = _cdiv(gk, splits)
    a = np.zeros(len(blocks))
    b = np.zeros(len(blocks))
    for s in range(int(splits.max(initial=1))):
        live = s < splits
        covered = np.minimum(per, gk - s * per)
        k_elements = np.minimum(k, (s * per + covered) * bk) - s * per * bk
        a += np.where(live, m * k_elements * in_b * np.where(covered > 1, gn, 1), 0.0)
        b += np.where(live, k_elements * n * b_b * np.where((covered > 1) | (gn > 1), gm, 1), 0.0)
    c = m * n * out_b
    partial = splits * m * n * ACC_BYTES
    split = splits > 1
    written = np.where(split, partial, c)
    copies = a + b + written
    main = copies if not chip.cache_levels else m * k * in_b + k * n * b_b + written
    units = chip.matrix.count
    costs = [_step_costs(chip, dtype, in_b, *key) for key in zip(bm.tolist(), bk.tolist(), bn.tolist())]
    step = np.array([cycles for cycles, _ in costs])
    step_bytes = np.array([moved for _, moved in costs])
    levels = level_bytes(chip, main, copies, gm * gn * gk * step_bytes)
    compute = _cdiv(splits * gm * gn, units) * gk * step / splits
    prologue = np.minimum(bm, m) * np.minimum(bk, k) * in_b + np.minimum(bk, k) * np.minimum(bn, n) * b_b
    last_block = (m - (gm - 1) * bm) * (n - (gn - 1) * bn)
    total = _overlap_cycles(chip, compute, levels, prologue, last_block * np.where(split, ACC_BYTES, out_b),
                            shard.link_bytes, splits * gm * gn * per, m * k * in_b + k * n * b_b + written,
                            splits * gm * gn)
    combine_copies = partial + c
    combine = _overlap_cycles(chip, 0.0, level_bytes(chip, combine_copies, combine_copies, 0.0),
                              splits * np.minimum(bm, m) * np.minimum(bn, n) * ACC_BYTES, last_block * out_b,
                              0.0, gm * gn, combine_copies, gm)
    return np.where(split, total + combine, total) / chip.clock_hz
