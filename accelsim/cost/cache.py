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


def wave_unique_bytes(indices: np.ndarray, step_bytes: np.ndarray, copied: np.ndarray, grid: tuple[int, ...],
                      units: int) -> float:
    """Bytes of the distinct blocks each wave copies (first copy of each block in a wave misses), summed."""
    wave, _ = wave_of_each_step(grid, units)
    keyed = np.concatenate([wave[:, None], indices], axis=1)[copied]
    _, first = np.unique(keyed, axis=0, return_index=True)
    return float(step_bytes[copied][first].sum())


def wave_step_working_set(indices: np.ndarray, block_bytes: float, grid: tuple[int, ...], units: int) -> float:
    """Largest number of bytes of one operand's distinct blocks a wave needs at one sequential step."""
    wave, seq = wave_of_each_step(grid, units)
    keyed = np.unique(np.concatenate([wave[:, None], seq[:, None], indices], axis=1), axis=0)
    _, counts = np.unique(keyed[:, :2], axis=0, return_counts=True)
    return float(counts.max()) * block_bytes
