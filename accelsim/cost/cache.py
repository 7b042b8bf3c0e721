"""Main-memory traffic behind a shared cache (a GPU's L2), from the blocks each wave of work touches.

Blocks of a kernel's parallel grid points run in waves of ``units`` (SMs) at a time, in launch
order, and walk their sequential (last) grid axis roughly in lockstep. If the blocks the wave
needs at one sequential step fit in the cache, each distinct block is fetched from main memory
once per wave and every other copy hits the cache. Otherwise every copy misses.
"""

from __future__ import annotations

import numpy as np


def wave_of_each_step(grid: tuple[int, ...], units: int) -> tuple[np.ndarray, np.ndarray]:
    """(wave id, sequential index) of every grid step in execution order."""
    steps = int(np.prod(grid)) if grid else 1
    last = grid[-1] if len(grid) > 1 else 1
    order = np.arange(steps)
    return (order // last) // units, order % last


def _row_keys(columns: list[np.ndarray]) -> np.ndarray:
    """One int64 per row, equal exactly when the rows are equal: a mixed-radix encoding, or the row's
    rank among the distinct rows when the radices would overflow int64."""
    columns = [np.asarray(c, np.int64) for c in columns]
    if not len(columns[0]):
        return np.zeros(0, np.int64)
    lows = [int(c.min()) for c in columns]
    radices = [int(c.max()) - low + 1 for c, low in zip(columns, lows)]
    if np.prod([float(r) for r in radices]) >= 2.0 ** 62:
        return np.unique(np.stack(columns, 1), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
    key = np.zeros(len(columns[0]), np.int64)
    for column, low, radix in zip(columns, lows, radices):
        key = key * radix + (column - low)
    return key


def wave_unique_bytes(indices: np.ndarray, step_bytes: np.ndarray, copied: np.ndarray, grid: tuple[int, ...],
                      units: int) -> float:
    """Bytes of the distinct blocks each wave copies (first copy of each block in a wave misses), summed."""
    wave, _ = wave_of_each_step(grid, units)
    keys = _row_keys([wave[copied]] + [indices[copied, i] for i in range(indices.shape[1])])
    _, first = np.unique(keys, return_index=True)
    return float(step_bytes[copied][first].sum())


def wave_step_working_set(indices: np.ndarray, block_bytes: float, grid: tuple[int, ...], units: int) -> float:
    """Largest number of bytes of one operand's distinct blocks a wave needs at one sequential step."""
    wave, seq = wave_of_each_step(grid, units)
    step_group = _row_keys([wave, seq])
    _, first = np.unique(_row_keys([wave, seq] + [indices[:, i] for i in range(indices.shape[1])]), return_index=True)
    _, counts = np.unique(step_group[first], return_counts=True)
    return float(counts.max()) * block_bytes
