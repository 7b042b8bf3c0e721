"""Main-memory traffic behind a shared cache (a GPU's L2), from the blocks each wave of work touches.

Blocks of a kernel's parallel grid points (all axes but the last) run in waves of ``units`` (SMs) at a
time, in launch order, and walk the sequential (last) axis roughly in lockstep. If the blocks a wave
needs at one sequential step fit in the cache, each distinct block a wave touches is fetched from main
memory once for that wave and every other copy hits; an operand never misses more bytes than it copies.
Otherwise every copy misses. Writes always reach main memory.

Counted from the structure of each operand's index map (``accelsim.cost.blocks``): when the blocks of
different parallel points are disjoint (the index names its parallel coordinates, as in every matmul
and decode operand), only the parallel points and the per-point distinct blocks are evaluated; other
operands (flash attention's causally clamped K/V) are evaluated step by step, within a size limit.
"""

from __future__ import annotations

import math

import numpy as np

from accelsim.chips.spec import Chip
from accelsim.cost.blocks import BlockStream, StreamCount, check_size, count_stream


def _layout(grid: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """(parallel axes' sizes, sequential length): a 1-D grid is all parallel, one step each."""
    if len(grid) >= 2:
        return tuple(grid[:-1]), grid[-1]
    return tuple(grid), 1


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an int64 array (sort-based: faster than hashing at these sizes; numpy's
    default sort, several times faster than its stable one on int64, and equal values need no order)."""
    ordered = np.sort(values)
    keep = np.ones(ordered.shape, bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def _keys(arrays: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """One int64 per point of ``shape``, equal exactly where every array is equal (rank when radices overflow)."""
    check_size(shape, "the cache model")
    columns = [np.broadcast_to(a, shape).reshape(-1).astype(np.int64) for a in arrays]
    if not columns:
        return np.zeros(math.prod(shape), np.int64)
    lows = [int(c.min()) for c in columns]
    radices = [int(c.max()) - low + 1 for c, low in zip(columns, lows)]
    if math.prod(float(r) for r in radices) >= 2.0 ** 62:
        return np.unique(np.stack(columns, 1), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
    key = np.zeros(len(columns[0]), np.int64)
    for column, low, radix in zip(columns, lows, radices):
        key = key * radix + (column - low)
    return key


def wave_misses(stream: BlockStream, units: int) -> tuple[float, float]:
    """(bytes of the distinct blocks each wave touches, summed over waves; the largest bytes of distinct
    blocks one wave needs at one sequential step) for a read operand."""
    par_sizes, seq_len = _layout(stream.grid)
    n_par = len(par_sizes)
    depends = [any(x.shape[a] > 1 for x in stream.index) for a in range(len(stream.grid))]
    par_deps = [a for a in range(n_par) if depends[a]]
    seq_axis = len(stream.grid) - 1 if len(stream.grid) >= 2 else None
    fixed = [x for x in stream.index if seq_axis is None or x.shape[seq_axis] == 1]
    moving = [d for d, x in enumerate(stream.index) if seq_axis is not None and x.shape[seq_axis] > 1]
    dep_shape = tuple(size if a in par_deps else 1 for a, size in enumerate(stream.grid[:n_par]))
    dep_shape += (1,) * (len(stream.grid) - n_par)
    fixed_keys = _keys(fixed, dep_shape)
    if par_deps and _distinct(fixed_keys).size != fixed_keys.size:
        return _dense_wave_misses(stream, units)
    point_bytes = _distinct_bytes_per_point(stream, moving, dep_shape, seq_axis)
    return disjoint_wave_misses(par_sizes, par_deps, point_bytes, units, stream.block_bytes)


def _distinct_bytes_per_point(stream: BlockStream, moving: list[int], dep_shape: tuple[int, ...],
                              seq_axis: int | None) -> np.ndarray:
    """Bytes of the distinct blocks of each parallel point over the sequential axis, on the dependent
    parallel sub-grid (flattened row-major)."""
    fixed_dims = [d for d in range(len(stream.index)) if d not in moving]
    fixed_bytes = np.broadcast_to(np.asarray(
        _product_of_extents(stream, fixed_dims), np.float64), dep_shape).reshape(-1)
    if not moving:
        return fixed_bytes * stream.itemsize
    arrays = [stream.index[d] for d in moving]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    check_size(shape, "the cache model")
    keys = _keys(arrays, shape).reshape(shape)
    extents = np.broadcast_to(np.asarray(_product_of_extents(stream, moving), np.float64), shape)
    order = np.argsort(keys, axis=seq_axis, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=seq_axis)
    sorted_bytes = np.take_along_axis(np.ascontiguousarray(extents), order, axis=seq_axis)
    first = np.ones(shape, bool)
    head = [slice(None)] * len(shape)
    head[seq_axis] = slice(1, None)
    tail = list(head)
    tail[seq_axis] = slice(None, -1)
    first[tuple(head)] = sorted_keys[tuple(head)] != sorted_keys[tuple(tail)]
    per_point = np.where(first, sorted_bytes, 0.0).sum(axis=seq_axis, keepdims=True)
    return (np.broadcast_to(per_point, dep_shape).reshape(-1) * fixed_bytes) * stream.itemsize


def _product_of_extents(stream: BlockStream, dims: list[int]):
    result = 1.0
    for d in dims:
        result = result * stream.extent(d, stream.index[d])
    return result


def disjoint_wave_misses(par_sizes: tuple[int, ...], par_deps: list[int], point_bytes: np.ndarray, units: int,
                          block_bytes: float) -> tuple[float, float]:
    """Waves over row-major parallel points whose block sets are disjoint between distinct dependent points."""
    parallel = math.prod(par_sizes)
    if not par_deps:
        return float(point_bytes[0]) * math.ceil(parallel / units), block_bytes
    inner = max(par_deps)
    repeat = math.prod(par_sizes[inner + 1:])  # consecutive parallel points that share every coordinate
    reduced_sizes = par_sizes[: inner + 1]
    reduced = math.prod(reduced_sizes)
    if par_deps == list(range(inner + 1 - len(par_deps), inner + 1)):
        return cyclic_wave_misses(parallel, repeat, math.prod(par_sizes[a] for a in par_deps), point_bytes, units,
                                   block_bytes)
    check_size((reduced,), "the cache model")
    coords = np.unravel_index(np.arange(reduced, dtype=np.int64), reduced_sizes)
    dep_sizes = [par_sizes[a] for a in par_deps]
    point = np.ravel_multi_index(tuple(coords[a] for a in par_deps), dep_sizes)
    first_wave = (np.arange(reduced, dtype=np.int64) * repeat) // units
    last_wave = ((np.arange(reduced, dtype=np.int64) + 1) * repeat - 1) // units
    spans = last_wave - first_wave + 1
    waves = np.repeat(first_wave, spans) + (np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans))
    points = np.repeat(point, spans)
    pairs = _distinct(waves * math.prod(dep_sizes) + points)
    misses = float(point_bytes[pairs % math.prod(dep_sizes)].sum())
    per_wave = np.bincount(pairs // math.prod(dep_sizes))
    return misses, float(per_wave.max()) * block_bytes


def cyclic_wave_misses(parallel: int, repeat: int, points: int, point_bytes: np.ndarray, units: int,
                        block_bytes: float) -> tuple[float, float]:
    """The dependent axes are the innermost of the reduced parallel space, so its index runs through the
    points cyclically: a wave covering reduced indices lo..hi touches min(hi - lo + 1, points) points
    from lo mod points on. One row per wave, no per-point work."""
    starts = np.arange(0, parallel, units, dtype=np.int64)
    lo = starts // repeat
    hi = (np.minimum(starts + units, parallel) - 1) // repeat
    count = np.minimum(hi - lo + 1, points)
    prefix = np.concatenate([[0.0], np.cumsum(point_bytes)])
    first = lo % points
    end = first + count
    wrapped = end > points
    touched = np.where(wrapped, prefix[points] - prefix[first] + prefix[np.where(wrapped, end - points, 0)],
                       prefix[np.minimum(end, points)] - prefix[first])
    return float(touched.sum()), float(count.max()) * block_bytes


def _dense_wave_misses(stream: BlockStream, units: int) -> tuple[float, float]:
    """The same quantities, evaluated at every grid step (operands whose points share blocks irregularly).

    Each step's (wave, block) and (wave, step of the sequential axis, block) are packed into one int64 in the
    grid's broadcast form, so only the packed keys are ever grid-sized; the distinct keys are sorted once each."""
    grid = stream.grid
    check_size(grid, "the cache model")
    par_sizes, seq_len = _layout(grid)
    points = np.arange(math.prod(par_sizes), dtype=np.int64).reshape(par_sizes + ((1,) if len(grid) >= 2 else ()))
    wave = points // units
    seq = np.arange(seq_len, dtype=np.int64).reshape((1,) * (len(grid) - 1) + (seq_len,))
    waves = int(wave.max()) + 1
    packed = _packed_index(stream.index)
    if packed is None or float(waves) * seq_len * packed[1] >= 2.0 ** 62:
        return _dense_wave_misses_ranked(stream, units)
    block, radix = packed
    distinct = _distinct(np.broadcast_to(wave * radix + block, grid).reshape(-1))
    lows = [int(np.min(x)) for x in stream.index]
    coordinates, rest = [], distinct % radix
    for x, low in reversed(list(zip(stream.index, lows))):
        size = int(np.max(x)) - low + 1
        coordinates.append(rest % size + low)
        rest = rest // size
    misses = float(np.broadcast_to(np.asarray(stream.bytes_at(tuple(reversed(coordinates))), np.float64),
                                   distinct.shape).sum())
    steps = _distinct(np.broadcast_to((wave * seq_len + seq) * radix + block, grid).reshape(-1)) // radix
    ends = np.flatnonzero(np.diff(steps)) + 1
    counts = np.diff(np.concatenate([[0], ends, [steps.size]]))
    return misses, float(counts.max()) * stream.block_bytes


def _packed_index(index: tuple[np.ndarray, ...]) -> tuple[np.ndarray, int] | None:
    """The block coordinates packed into one int64 per point (broadcastable to the grid) and its radix, or None
    when their ranges overflow it."""
    block, radix = np.zeros((1,), np.int64), 1
    for x in index:
        low, size = int(np.min(x)), int(np.max(x)) - int(np.min(x)) + 1
        if float(radix) * size >= 2.0 ** 62:
            return None
        block, radix = block * size + (np.asarray(x, np.int64) - low), radix * size
    return block, radix


def _dense_wave_misses_ranked(stream: BlockStream, units: int) -> tuple[float, float]:
    """``_dense_wave_misses`` for coordinates too wide to pack: every step's key ranked over the whole grid."""
    grid = stream.grid
    par_sizes, seq_len = _layout(grid)
    steps = math.prod(grid)
    order = np.arange(steps, dtype=np.int64)
    wave, seq = (order // seq_len) // units, order % seq_len
    index = [np.broadcast_to(x, grid).reshape(-1) for x in stream.index]
    per_step = np.broadcast_to(np.asarray(stream.bytes_at(tuple(stream.index)), np.float64), grid).reshape(-1)
    _, first = np.unique(_keys([wave] + index, (steps,)), return_index=True)
    misses = float(per_step[first].sum())
    _, first_step = np.unique(_keys([wave, seq] + index, (steps,)), return_index=True)
    _, counts = np.unique(_keys([wave, seq], (steps,))[first_step], return_counts=True)
    return misses, float(counts.max()) * stream.block_bytes


def main_bytes_behind_cache(streams: list[BlockStream], counts: list[StreamCount], units: int,
                            cache_bytes: float) -> float:
    """Main-memory bytes of a kernel's operands behind a cache of ``cache_bytes`` shared by ``units`` units."""
    reads = [(s, c) for s, c in zip(streams, counts) if not s.is_output]
    writes = sum(c.bytes for s, c in zip(streams, counts) if s.is_output)
    if not reads:
        return writes
    measured = [wave_misses(s, units) for s, _ in reads]
    return misses_behind_cache(measured, [c.bytes for _, c in reads], writes, cache_bytes)


def misses_behind_cache(measured: list[tuple[float, float]], read_bytes: list[float], writes: float,
                        cache_bytes: float) -> float:
    """Main-memory bytes from each read operand's (wave misses, largest per-step working set) and copied
    bytes: its misses if every working set fits the cache together, else every copy; plus the writes."""
    if sum(ws for _, ws in measured) > cache_bytes:
        return sum(read_bytes) + writes
    return sum(min(miss, copied) for (miss, _), copied in zip(measured, read_bytes)) + writes


def main_bytes_on_chip(chip: Chip, streams: list[BlockStream], counts: list[StreamCount] | None = None) -> float:
    """A kernel's main-memory bytes on ``chip``: behind its first cache level if it has one, else every copy."""
    counts = [count_stream(s) for s in streams] if counts is None else counts
    if not chip.cache_levels:
        return sum(c.bytes for c in counts)
    return main_bytes_behind_cache(streams, counts, chip.matrix.count, chip.cache_levels[0].total_capacity_bytes)


def level_bytes(chip: Chip, main: float, copies: float, operand_bytes: float) -> dict[str, float]:
    """Bytes per level of a kernel: ``main`` at main memory, every copy at each cache level, copies plus the
    matrix unit's operand traffic at the staging level."""
    levels = {chip.main_memory.name: main}
    for cache in chip.cache_levels:
        levels[cache.name] = copies
    if len(chip.memory) > 1:
        levels[chip.staging_memory.name] = copies + operand_bytes
    return levels
