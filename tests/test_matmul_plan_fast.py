"""The fast matmul planner chooses exactly what the reference planner chooses, piece by piece and as a whole;
the packed dense cache model equals the ranked one it replaced."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.chips import load_chip, preset_names
from accelsim.cost.blocks import BlockStream, grid_axes
from accelsim.cost.cache import _dense_wave_misses, _dense_wave_misses_ranked, main_bytes_on_chip
from accelsim.cost.footprint import footprint
from accelsim.dtypes import dtype_bytes
from accelsim.tiling.matmul import _evaluate, _footprint, _split_valid, main_level_bytes, matmul_streams, plan_matmul
from accelsim.tiling.matmul_batch import candidate_times
from accelsim.tiling.matmul_cache import kernel_main_bytes
from accelsim.tiling.sharding import shard_over_chips
from kernels.matmul import matmul_specs
from kernels.matmul_split import split_k_valid, split_specs

PRESETS = [n for n in preset_names() if n != "host"]
SHAPES = [(2, 576, 1728), (32, 8192, 1280), (7, 3584, 8192), (3, 100, 20), (4096, 512, 2048), (130, 4096, 1536)]


@pytest.mark.parametrize("chip_name", PRESETS)
def test_fast_plan_equals_reference_plan(chip_name):
    chip = load_chip(chip_name)
    for (m, k, n), b_dtype in itertools.product(SHAPES, (None, "int4")):
        assert plan_matmul(m, k, n, chip, "bf16", b_dtype=b_dtype) == \
            plan_matmul(m, k, n, chip, "bf16", b_dtype=b_dtype, reference=True), (m, k, n, b_dtype)


def test_closed_form_footprint_and_split_rule_equal_the_kernels():
    for bm, bn, bk, splits, b_dtype, register in itertools.product((8, 64, 256), (16, 128), (32, 512), (1, 2, 4),
                                                                  ("bf16", "int8", "int4"), (0, 65536)):
        m, k, n = 300, 2000, 500
        specs = (matmul_specs(m, k, n, bm=bm, bn=bn, bk=bk, in_dtype="bf16", out_dtype="bf16", b_dtype=b_dtype)
                 if splits == 1 else
                 split_specs(m, k, n, bm=bm, bn=bn, bk=bk, splits=splits, in_dtype="bf16", b_dtype=b_dtype))
        closed = _footprint(bm, bn, bk, splits, 2, dtype_bytes(b_dtype), 2, register)
        assert closed == footprint(specs, register)
    for k, bk, splits in itertools.product((1, 7, 100, 4096), (8, 16, 256), (1, 2, 3, 8, 64)):
        assert _split_valid(k, bk, splits) == split_k_valid(k, bk, splits)


@settings(derandomize=True, deadline=None, max_examples=80)
@given(m=st.integers(1, 3000), k=st.integers(1, 5000), n=st.integers(1, 3000),
       blocks=st.tuples(st.sampled_from([8, 16, 64, 128]), st.sampled_from([16, 128, 256]),
                        st.sampled_from([32, 128, 512])), splits=st.sampled_from([1, 2, 3, 4, 8, 16]),
       chip_name=st.sampled_from(["h100-sxm", "b200", "mi300x", "a100-80gb"]), b_bytes=st.sampled_from([2, 1, 0.5]))
def test_closed_form_cache_misses_equal_the_stream_model(m, k, n, blocks, splits, chip_name, b_bytes):
    chip, (bm, bn, bk) = load_chip(chip_name), blocks
    splits = splits if _split_valid(k, bk, splits) else 1
    copies = main_level_bytes(m, k, n, bm, bn, bk, 2, 2, splits, b_bytes)
    kernels = matmul_streams(m, k, n, bm, bn, bk, 2, 2, splits, b_bytes)
    assert kernel_main_bytes(chip, m, k, n, bm, bn, bk, splits, 2, b_bytes, copies) == \
        main_bytes_on_chip(chip, kernels[0])
    if splits > 1:  # the combine kernel's misses are its copies
        assert main_bytes_on_chip(chip, kernels[1]) == copies["partial_read"] + copies["c"]


@pytest.mark.parametrize("chip_name", ["groq-lpu", "tpu-v5e", "h100-sxm", "trainium2"])
def test_batched_times_match_one_by_one_evaluation(chip_name):
    chip = load_chip(chip_name)
    m, k, n = 40, 3000, 700
    shard = shard_over_chips(m, k, n, chip, "bf16", "bf16")
    blocks = [(bm, bn, bk, s) for bm, bn, bk, s in itertools.product((8, 16, 64), (128, 256), (128, 512), (1, 2, 4))]
    times = candidate_times(shard, chip, "bf16", k, np.asarray(blocks), 2, 2, 2)
    for row, time_s in zip(blocks, times):
        plan = _evaluate(shard, chip, "bf16", "bf16", *row, (m, k, n), perfect_cache=True)
        assert time_s == pytest.approx(plan.time_s, rel=1e-12)


@st.composite
def clamped_streams(draw):
    """Grids with clamped and table-driven coordinates (the operands that take the dense cache model)."""
    grid = tuple(draw(st.lists(st.integers(1, 7), min_size=2, max_size=4)))
    axes = grid_axes(grid)
    index = []
    for _ in range(draw(st.integers(1, 3))):
        a, b = draw(st.integers(0, len(grid) - 1)), draw(st.integers(0, len(grid) - 1))
        table = np.asarray(draw(st.lists(st.integers(-2, 6), min_size=grid[b], max_size=grid[b])), np.int64)
        index.append(draw(st.sampled_from([np.minimum(axes[a], table[axes[b]]), axes[a] + 2 * axes[b], table[axes[b]],
                                           np.zeros((1,) * len(grid), np.int64) + 3])))
    block = tuple(draw(st.integers(1, 4)) for _ in index)
    shape = tuple(draw(st.integers(1, 20)) for _ in index)
    return BlockStream(grid, tuple(index), block, shape, float(draw(st.sampled_from([0.5, 2, 4]))), False)


@settings(derandomize=True, deadline=None, max_examples=150)
@given(stream=clamped_streams(), units=st.integers(1, 9))
def test_packed_dense_cache_model_equals_the_ranked_one(stream, units):
    assert _dense_wave_misses(stream, units) == _dense_wave_misses_ranked(stream, units)
