"""Block copies of one kernel operand under Pallas's revisiting rule, counted from the structure of its index map.

A ``BlockStream`` holds an operand's block index at every grid point as one integer array per block
dimension, each *broadcastable* to the grid: an array has extent 1 along every grid axis it does not
depend on (``grid_axes`` gives the grid indices in that form). Counting never materialises the
whole grid. The grid runs row-major (last axis fastest); a transition between consecutive steps has
a *carry level* ``a``: axis ``a`` steps up by one while every later axis wraps to 0. A block is copied
when its index changes across a transition (inputs: the new block is read; outputs: the old block is
written back), plus the first read and the last write. For each carry level only the axes the
index depends on are evaluated, so the cost grows with the dependent sub-grid, not with the grid.

Tiling (closed-form plans) and trace (executed kernels) both count through this module; the dense
evaluation over every grid step is kept only as the test oracle (``dense_count``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError, TooLarge

MAX_EVALUATED = 1 << 26  # elements of one evaluated sub-grid; beyond it a request is too large to model


def grid_axes(grid: tuple[int, ...]) -> list[np.ndarray]:
    """The index of each grid axis as an int64 array of extent ``grid[a]`` along axis ``a`` and 1 elsewhere."""
    n = len(grid)
    for size in grid:
        check_size((size,), "a grid axis")
    return [np.arange(size, dtype=np.int64).reshape((1,) * a + (size,) + (1,) * (n - a - 1))
            for a, size in enumerate(grid)]


def as_grid_array(value, ndim: int) -> np.ndarray:
    """``value`` as an int64 array with ``ndim`` dims (scalars and short arrays get leading 1s)."""
    array = np.asarray(value, dtype=np.int64)
    if array.ndim > ndim:
        raise AccelsimError(f"an index array of shape {array.shape} has more dims than the grid ({ndim})")
    return array.reshape((1,) * (ndim - array.ndim) + array.shape)


def count_true(mask, grid: tuple[int, ...]) -> float:
    """How many grid points a broadcastable boolean ``mask`` holds at."""
    mask = np.asarray(mask, dtype=bool)
    mask = mask.reshape((1,) * (len(grid) - mask.ndim) + mask.shape)
    repeat = math.prod(size for size, extent in zip(grid, mask.shape) if extent == 1)
    return float(np.count_nonzero(mask)) * repeat


def check_size(shape: tuple[int, ...], what: str) -> None:
    """A one-line error when evaluating ``shape`` points would pass ``MAX_EVALUATED``."""
    if math.prod(shape) > MAX_EVALUATED:
        raise TooLarge(f"{what} needs {math.prod(shape):.3g} evaluated grid points, over the limit of "
                       f"{MAX_EVALUATED} (accelsim.cost.blocks.MAX_EVALUATED): use larger blocks or a smaller shape")


@dataclass(frozen=True)
class StreamCount:
    """What one operand moves between main memory and on-chip memory over the whole grid."""

    copies: float
    bytes: float
    first_bytes: float  # the first step's block (what the prologue waits for)
    last_bytes: float   # the last step's block (what the epilogue waits for)


@dataclass(frozen=True)
class BlockStream:
    """One operand's blocks over a grid: ``index[d]`` is the block coordinate of dim ``d`` (broadcastable to
    ``grid``); ``element[d]`` marks a dim indexed by element offset rather than by block number."""

    grid: tuple[int, ...]
    index: tuple[np.ndarray, ...]
    block_shape: tuple[int, ...]
    array_shape: tuple[int, ...]
    itemsize: float
    is_output: bool
    element: tuple[bool, ...] = ()

    @property
    def block_bytes(self) -> float:
        return float(math.prod(self.block_shape)) * self.itemsize

    def _element(self, d: int) -> bool:
        return bool(self.element[d]) if self.element else False

    def extent(self, d: int, index: np.ndarray) -> np.ndarray | int:
        """Elements of dim ``d`` a copy of the block at ``index`` moves (clipped to the array)."""
        size, total = self.block_shape[d], self.array_shape[d]
        start = np.asarray(index if self._element(d) else index * size)
        low, high = int(start.min()), int(start.max())
        if low >= 0 and high + size <= total:
            return size
        return np.clip(np.minimum(start + size, total) - start, 0, size)

    def bytes_at(self, index: tuple[np.ndarray, ...]) -> np.ndarray | float:
        """Clipped bytes of the blocks at ``index`` (arrays broadcastable to the grid)."""
        result: np.ndarray | float = self.itemsize
        for d, coordinate in enumerate(index):
            result = result * self.extent(d, coordinate)
        return result


def _at(array: np.ndarray, axis: int, position) -> np.ndarray:
    """``array`` at ``position`` (an int or a slice) along ``axis``, unless it does not depend on that axis."""
    if array.shape[axis] == 1:
        return array
    key = [slice(None)] * array.ndim
    key[axis] = slice(position, position + 1) if isinstance(position, int) else position
    return array[tuple(key)]


def _transition_points(array: np.ndarray, grid: tuple[int, ...], level: int) -> tuple[np.ndarray, np.ndarray]:
    """The index before and after each transition of carry ``level``: axis ``level`` at t -> t+1, later
    axes at their last value -> 0."""
    before, after = _at(array, level, slice(0, grid[level] - 1)), _at(array, level, slice(1, grid[level]))
    for axis in range(level + 1, len(grid)):
        before, after = _at(before, axis, grid[axis] - 1), _at(after, axis, 0)
    return before, after


def _weighted_sum(values, grid_extent: tuple[int, ...]) -> float:
    """Sum of ``values`` broadcast over ``grid_extent`` without materialising the broadcast."""
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape((1,) * (len(grid_extent) - values.ndim) + values.shape)
    repeat = math.prod(size for size, extent in zip(grid_extent, values.shape) if extent == 1)
    return float(values.sum()) * repeat


def count_stream(stream: BlockStream) -> StreamCount:
    """Copies and clipped bytes of one operand under the revisiting rule, from the index map's structure."""
    grid, n = stream.grid, len(stream.grid)
    first = tuple(_point(x, grid, 0) for x in stream.index)
    last = tuple(_point(x, grid, -1) for x in stream.index)
    first_bytes, last_bytes = float(stream.bytes_at(first)), float(stream.bytes_at(last))
    copies, total = 1.0, last_bytes if stream.is_output else first_bytes
    for level in range(n):
        if grid[level] < 2:
            continue
        pairs = [_transition_points(x, grid, level) for x in stream.index]
        extent = tuple(grid[:level]) + (grid[level] - 1,) + (1,) * (n - level - 1)
        changed = _changed(pairs)
        if changed is False:
            continue
        moved = stream.bytes_at(tuple(b if stream.is_output else a for b, a in pairs))
        check_size(np.broadcast_shapes(np.shape(changed), np.shape(moved)), "counting block copies")
        copies += _weighted_sum(changed, extent) if changed is not True else math.prod(extent)
        total += _weighted_sum(moved if changed is True else np.where(changed, moved, 0.0), extent)
    return StreamCount(copies, total, first_bytes, last_bytes)


def _changed(pairs: list[tuple[np.ndarray, np.ndarray]]):
    """Where any coordinate differs across the transitions: True (everywhere), False (nowhere) or a mask."""
    masks = []
    for before, after in pairs:
        diff = before != after
        if diff.all():
            return True
        if diff.any():
            masks.append(diff)
    if not masks:
        return False
    out = masks[0]
    for mask in masks[1:]:
        out = out | mask
    return out


def _point(array: np.ndarray, grid: tuple[int, ...], which: int) -> np.ndarray:
    """The value at the first (``which`` = 0) or last (-1) grid point."""
    key = tuple(0 if extent == 1 else (size - 1 if which == -1 else 0) for size, extent in zip(grid, array.shape))
    return array[key]


def dense_count(stream: BlockStream) -> StreamCount:
    """The same count by evaluating every grid step (the test oracle; cost grows with the grid)."""
    steps = math.prod(stream.grid)
    flat = np.stack([np.broadcast_to(x, stream.grid).reshape(-1) for x in stream.index], axis=1) \
        if stream.index else np.zeros((steps, 0), np.int64)
    per_step = np.broadcast_to(np.asarray(stream.bytes_at(tuple(np.broadcast_to(x, stream.grid) for x in stream.index)),
                                          dtype=np.float64), stream.grid).reshape(-1)
    changed = np.ones(steps, bool)
    changed[1:] = np.any(flat[1:] != flat[:-1], axis=1)
    if stream.is_output:
        changed = np.roll(changed, -1)
        changed[-1] = True
    return StreamCount(float(changed.sum()), float(per_step[changed].sum()), float(per_step[0]), float(per_step[-1]))
