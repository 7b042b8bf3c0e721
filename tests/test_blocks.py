"""The structured block counter and cache model equal their dense, every-grid-step evaluation exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.cost.blocks import BlockStream, count_stream, count_true, dense_count, grid_axes
from accelsim.cost.cache import _dense_wave_misses, wave_misses
from accelsim.errors import AccelsimError

SETTINGS = settings(derandomize=True, deadline=None, max_examples=150)


@st.composite
def streams(draw):
    """A random grid and index map: constants, affine maps, clamps against per-point tables (as scalar
    prefetch gives them), divisions, and maps that ignore some axes."""
    grid = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    axes = grid_axes(grid)
    n_dims = draw(st.integers(1, 3))
    index = []
    for _ in range(n_dims):
        form = draw(st.sampled_from(["const", "axis", "affine", "clamp", "table", "div"]))
        a, b = draw(st.integers(0, len(grid) - 1)), draw(st.integers(0, len(grid) - 1))
        if form == "const":
            value = np.full((1,) * len(grid), draw(st.integers(0, 3)), np.int64)
        elif form == "axis":
            value = axes[a]
        elif form == "affine":
            value = axes[a] * draw(st.integers(0, 3)) + axes[b] + draw(st.integers(0, 2))
        elif form == "clamp":
            table = np.asarray(draw(st.lists(st.integers(0, 5), min_size=grid[b], max_size=grid[b])), np.int64)
            value = np.minimum(axes[a], table[axes[b]])
        elif form == "table":
            table = np.asarray(draw(st.lists(st.integers(0, 5), min_size=grid[b], max_size=grid[b])), np.int64)
            value = table[axes[b]]
        else:
            value = axes[a] // 2
        index.append(value)
    block = tuple(draw(st.integers(1, 4)) for _ in index)
    shape = tuple(draw(st.integers(1, 20)) for _ in index)
    return BlockStream(grid, tuple(index), block, shape, float(draw(st.sampled_from([1, 2, 4]))),
                       draw(st.booleans()))


@SETTINGS
@given(stream=streams())
def test_structured_count_equals_dense_evaluation(stream):
    assert count_stream(stream) == dense_count(stream)


@SETTINGS
@given(stream=streams(), units=st.integers(1, 7))
def test_structured_cache_model_equals_dense_evaluation(stream, units):
    read = BlockStream(stream.grid, stream.index, stream.block_shape, stream.array_shape, stream.itemsize, False)
    misses, working_set = wave_misses(read, units)
    dense_misses, dense_working_set = _dense_wave_misses(read, units)
    assert misses == pytest.approx(dense_misses, rel=1e-12)
    assert working_set == dense_working_set


def test_matmul_operand_copies_by_hand():
    # grid (i, j, k) = (2, 3, 4); A at (i, k) changes every step: 2*3*4 copies of a 2x5 f32 block.
    grid = (2, 3, 4)
    i, j, k = grid_axes(grid)
    a = BlockStream(grid, (i, k), (2, 5), (4, 20), 4.0, False)
    assert count_stream(a).copies == 2 * 3 * 4
    assert count_stream(a).bytes == 2 * 3 * 4 * 2 * 5 * 4
    # C at (i, j) is resident across k: written once per (i, j); the last column block is clipped to 1 of 3.
    c = BlockStream(grid, (i, j), (2, 3), (4, 7), 4.0, True)
    assert count_stream(c).copies == 2 * 3
    assert count_stream(c).bytes == 2 * (2 * 3 + 2 * 3 + 2 * 1) * 4


def test_count_true_multiplies_axes_the_mask_ignores():
    grid = (3, 4, 5)
    mask = grid_axes(grid)[2] < 2  # true for 2 of 5 values of the last axis, whatever the others
    assert count_true(mask, grid) == 3 * 4 * 2


def test_a_huge_grid_is_counted_without_evaluating_it():
    grid = (100_000, 8, 64)  # 5e7 steps; the index depends on (b, j) only through a clamp
    b, g, j = grid_axes(grid)
    lengths = np.arange(1, 100_001, dtype=np.int64) * 7 % 32768 + 1
    kv = np.minimum(j, (lengths[b] - 1) // 512)
    stream = BlockStream(grid, (b, g, kv), (1, 1, 512), (100_000, 8, 64 * 512), 2.0, False)
    copies = count_stream(stream).copies
    assert copies == 8 * float(((lengths - 1) // 512 + 1).sum())


def test_a_grid_too_large_to_evaluate_is_a_one_line_error():
    grid = (1 << 14, 1 << 14)
    i, j = grid_axes(grid)
    stream = BlockStream(grid, (np.minimum(i, j),), (1,), (1 << 14,), 1.0, False)
    with pytest.raises(AccelsimError, match="over the limit"):
        _dense_wave_misses(stream, 4)
    assert math.prod(grid) > 1 << 26


def test_shape_values_check_themselves_and_name_both_sides():
    from accelsim.shapes import AttentionShape, MatmulShape, same

    with pytest.raises(AccelsimError, match=r"MatmulShape.K must be a positive integer \(got 0\)"):
        MatmulShape(4, 0, 4)
    with pytest.raises(AccelsimError, match=r"kv heads \(3\) must divide query heads \(8\)"):
        AttentionShape(1, 8, 3, 16, 16, 64)
    with pytest.raises(AccelsimError, match=r"k and v shapes differ: k \(1, 2\) vs v \(1, 3\)"):
        same("k and v shapes", "k", (1, 2), "v", (1, 3))


def test_costs_add_and_scale():
    from accelsim.cost.result import Cost

    a = Cost.of("hbm", 2.0, bytes_per_level={"hbm": 10.0}, flops=4.0, calls=1.0)
    b = Cost.of("compute", 3.0, bytes_per_level={"hbm": 1.0, "l2": 5.0}, flops=6.0, calls=1.0)
    total = sum([a, b * 2])
    assert total.time_s == 2.0 + 6.0 and total.flops == 4.0 + 12.0 and total.calls == 3.0
    assert total.bytes_per_level == {"hbm": 12.0, "l2": 10.0}
    assert total.bound == "compute"  # 6 s of the 8 s are compute-bound
