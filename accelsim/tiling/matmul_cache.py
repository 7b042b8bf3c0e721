"""Main-memory bytes of the matmul kernels behind a chip's cache, in closed form (what ``main_bytes_on_chip``
of ``accelsim.tiling.matmul.matmul_streams`` returns, without evaluating a grid).

Parallel points run row-major in waves of ``units``. A's blocks of one (split, row block) and B's of one
(split, column block) are disjoint from every other's, because the k ranges of different splits are disjoint
(the last one clamped inside its own range), so each operand's misses are the cache model's disjoint-point wave
count over its distinct bytes per point, and at every sequential step each point holds one block of its own.
The combine kernel reads each partial block once, at one point only, so its misses are its copies.
"""

from __future__ import annotations

import numpy as np

from accelsim.chips.spec import Chip
from accelsim.cost.cache import disjoint_wave_misses, misses_behind_cache


def _extents(size: int, total: int) -> np.ndarray:
    """Elements of each block of ``size`` along a dim of ``total`` (the last one clipped)."""
    return np.minimum(size, total - np.arange(-(-total // size), dtype=np.int64) * size).astype(np.float64)


def kernel_main_bytes(chip: Chip, m: int, k: int, n: int, bm: int, bn: int, bk: int, splits: int, in_b: float,
                      b_b: float, copies: dict[str, float]) -> float:
    """The product kernel's main-memory bytes (unsplit grid (i, j, k); split (s, i, j, kk)) from its operands'
    copied bytes ``copies`` (``main_level_bytes``)."""
    rows, cols = _extents(bm, m), _extents(bn, n)
    blocks = -(-k // bk)
    per = -(-blocks // splits)
    starts = np.arange(splits, dtype=np.int64) * per
    k_elements = (np.minimum(k, (starts + np.minimum(per, blocks - starts)) * bk) - starts * bk).astype(np.float64)
    gm, gn = rows.size, cols.size
    if splits == 1:
        par, a_deps, b_deps = (gm, gn), [0] if gm > 1 else [], [1] if gn > 1 else []
    else:
        par, a_deps, b_deps = (splits, gm, gn), [0] + ([1] if gm > 1 else []), [0] + ([2] if gn > 1 else [])
    a_points = (k_elements[:, None] * (rows if gm > 1 else rows[:1])[None, :]).reshape(-1) * in_b
    b_points = (k_elements[:, None] * (cols if gn > 1 else cols[:1])[None, :]).reshape(-1) * b_b
    units = chip.matrix.count
    measured = [disjoint_wave_misses(par, a_deps, a_points, units, float(bm * bk) * in_b),
                disjoint_wave_misses(par, b_deps, b_points, units, float(bk * bn) * b_b)]
    return misses_behind_cache(measured, [copies["a"], copies["b"]], copies.get("partial", copies["c"]),
                               chip.cache_levels[0].total_capacity_bytes)
