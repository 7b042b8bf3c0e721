"""Tiled matmul: numerics against float64, executed counts == closed form on every chip, and bad input."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.chips import load_chip, preset_names
from accelsim.errors import AccelsimError
from accelsim.tiling import plan_matmul
from accelsim.tiling.matmul import candidate_blocks, main_level_bytes
from accelsim.trace.price import price_kernel, total
from accelsim.trace.workload import trace_workload
from kernels.matmul import matmul
from tests.conftest import as_f64, matmul_tolerance, random_array

PRESETS = [n for n in preset_names() if n != "host"]
SETTINGS = settings(derandomize=True, deadline=None, max_examples=12)


@SETTINGS
@given(m=st.integers(1, 80), k=st.integers(1, 80), n=st.integers(1, 80),
       bm=st.sampled_from([8, 16, 32]), bn=st.sampled_from([8, 16, 32]), bk=st.sampled_from([8, 16, 32]),
       dtype=st.sampled_from(["f32", "bf16"]), seed=st.integers(0, 2**16))
def test_matmul_matches_float64(m, k, n, bm, bn, bk, dtype, seed):
    a, b = random_array(seed, (m, k), dtype), random_array(seed + 1, (k, n), dtype)
    out = matmul(a, b, bm=bm, bn=bn, bk=bk)
    assert out.dtype == a.dtype
    a64, b64 = as_f64(a), as_f64(b)
    err = np.abs(as_f64(out) - a64 @ b64)
    assert np.all(np.isfinite(as_f64(out)))
    assert np.all(err <= matmul_tolerance(a64, b64, k, dtype))


def _traced_cost(plan, chip, m, k, n, dtype):
    """(the product kernel's record, the summed cost of every kernel the traced call ran)."""
    a = jnp.zeros((m, k), jnp.float32 if dtype == "f32" else jnp.bfloat16)
    b = jnp.zeros((k, n), a.dtype)
    trace = trace_workload(lambda x, y: matmul(x, y, **plan.blocks), a, b)
    assert len(trace.kernels) == (1 if plan.blocks["splits"] == 1 else 2) and not trace.matmuls
    return trace.kernels[0], total([price_kernel(record, chip) for record in trace.kernels])


@settings(derandomize=True, deadline=None, max_examples=40)
@given(m=st.integers(1, 1200), k=st.integers(1, 1200), n=st.integers(1, 1200),
       chip_name=st.sampled_from(PRESETS), dtype=st.sampled_from(["f32", "bf16"]))
def test_traced_counts_equal_closed_form(m, k, n, chip_name, dtype):
    chip = load_chip(chip_name)
    if dtype not in chip.matrix.dense_flops:
        dtype = "bf16"
    plan = plan_matmul(m, k, n, chip, dtype)
    record, cost = _traced_cost(plan, chip, m, k, plan.shape["N"] if plan.chips_needed == 1 else n, dtype)
    assert record.grid == plan.grid
    assert cost.bytes_per_level == plan.bytes_per_level
    assert cost.compute_cycles == pytest.approx(plan.compute_cycles, rel=1e-12)
    assert cost.total_cycles == pytest.approx(plan.total_cycles, rel=1e-12)
    assert record.flops == plan.executed_flops
    assert plan.main_bytes >= plan.compulsory_bytes  # a cache filters re-reads, never the first read


@settings(derandomize=True, deadline=None, max_examples=25)
@given(m=st.integers(1, 40), k=st.integers(1, 300), n=st.integers(1, 40), bk=st.sampled_from([8, 16, 32]),
       splits=st.integers(2, 8), chip_name=st.sampled_from(PRESETS), dtype=st.sampled_from(["f32", "bf16"]),
       seed=st.integers(0, 2**16))
def test_split_k_matches_float64_and_its_counts_equal_closed_form(m, k, n, bk, splits, chip_name, dtype, seed):
    from kernels.matmul_split import split_k_valid

    if not split_k_valid(k, bk, splits):
        splits = 1
    a, b = random_array(seed, (m, k), dtype), random_array(seed + 1, (k, n), dtype)
    out = matmul(a, b, bm=8, bn=8, bk=bk, splits=splits)
    a64, b64 = as_f64(a), as_f64(b)
    assert np.all(np.abs(as_f64(out) - a64 @ b64) <= matmul_tolerance(a64, b64, k, dtype))
    chip = load_chip(chip_name)
    if dtype not in chip.matrix.dense_flops:
        dtype = "bf16"
    plan = plan_matmul(m, k, n, chip, dtype, blocks={"bm": 8, "bn": 8, "bk": bk, "splits": splits})
    _, cost = _traced_cost(plan, chip, m, k, n, dtype)
    assert cost.bytes_per_level == plan.bytes_per_level
    assert cost.total_cycles == pytest.approx(plan.total_cycles, rel=1e-12)


def test_split_k_copies_by_hand():
    # K = 100 in blocks of 16: 7 k blocks; 3 splits of cdiv(7, 3) = 3 blocks: splits cover 3, 3, 1 blocks
    # (48, 48 and 4 elements of K). M = 8 rows in one i block, N = 20 in two j blocks of 16.
    copies = main_level_bytes(8, 100, 20, bm=8, bn=16, bk=16, in_bytes=2, out_bytes=2, splits=3)
    # A: splits with several k blocks are re-read per j block (2), the one-block split once.
    assert copies["a"] == (8 * 48 * 2 + 8 * 48 * 2 + 8 * 4 * 1) * 2
    # B: every split's rows once per i block (1), as there are two j blocks.
    assert copies["b"] == (48 + 48 + 4) * 20 * 2
    assert copies["partial"] == copies["partial_read"] == 3 * 8 * 20 * 4 and copies["c"] == 8 * 20 * 2


def test_compulsory_bytes_when_one_block_covers_everything():
    copies = main_level_bytes(100, 60, 70, bm=128, bn=128, bk=64, in_bytes=2, out_bytes=2)
    assert sum(copies.values()) == (100 * 60 + 60 * 70 + 100 * 70) * 2


def test_operand_reread_per_block_column():
    # 2 j-blocks and 3 k-blocks: A is copied once per j, B once per i (2 i-blocks).
    copies = main_level_bytes(64, 96, 64, bm=32, bn=32, bk=32, in_bytes=4, out_bytes=4)
    assert copies == {"a": 64 * 96 * 4 * 2, "b": 96 * 64 * 4 * 2, "c": 64 * 64 * 4}


def test_tpu_blocks_obey_8_128_rule():
    chip = load_chip("tpu-v5e")
    for bm, bn, bk, _ in candidate_blocks(1000, 3000, 700, chip, "bf16", "bf16"):
        assert (bm % 8 == 0 or bm == 1000) and (bn % 128 == 0 or bn == 700) and (bk % 128 == 0 or bk == 3000)


def test_bigger_problem_is_compute_bound_on_h100():
    plan = plan_matmul(8192, 8192, 8192, load_chip("h100-sxm"), "bf16")
    assert plan.bound != "hbm" and 0.3 < plan.mfu <= 1.0


def test_sram_chip_reports_chips_needed():
    chip = load_chip("groq-lpu")
    plan = plan_matmul(4096, 16384, 65536, chip, "bf16")
    assert plan.interconnect_s > 0
    # By hand: A (4096x16384 bf16) = 134,217,728 B is replicated on every chip; B + C = (16384*65536 +
    # 4096*65536) * 2 = 2,684,354,560 B are split over N. One LPU holds 220 MiB = 230,686,720 B, so
    # 96,468,992 B per chip are left for its share: 2,684,354,560 / 96,468,992 = 27.8 -> 28 chips.
    assert chip.main_memory.total_capacity_bytes == 230_686_720
    assert plan.chips_needed == 28


@pytest.mark.parametrize("dims", [(0, 4, 4), (4, -1, 4), (4, 4, 2.5)])
def test_bad_dimensions(dims):
    with pytest.raises(AccelsimError, match="must be a positive integer"):
        plan_matmul(*dims, load_chip("h100-sxm"))


def test_dtype_without_a_figure():
    chip = load_chip("h100-sxm")
    with pytest.raises(AccelsimError, match="no dense int4"):
        plan_matmul(64, 64, 64, chip, "int4")


def test_matmul_whose_a_alone_exceeds_a_chip_splits_rows_and_reports_chips():
    chip = load_chip("groq-lpu")
    plan = plan_matmul(8192, 16384, 4096, chip, "bf16")
    # By hand: A = 8192*16384*2 = 268,435,456 B > 230,686,720 B (one LPU), so A's rows are split into groups
    # holding at most half a chip: ceil(268,435,456 / 115,343,360) = 3 groups of 2731 rows (89,489,408 B).
    # Each group's B + C share = 16384*4096*2 + 2731*4096*2 = 156,590,080 B over 230,686,720 - 89,489,408 =
    # 141,197,312 B per chip: 2 column groups. 3 x 2 = 6 chips.
    assert plan.chips_needed == 6
    assert plan.flops == 2 * 8192 * 16384 * 4096


def test_tensor_core_pads_the_short_side_along_the_instructions_narrow_axis():
    from accelsim.cost.compute import step_cycles

    chip = load_chip("b200")  # [mma] m = 128, n = 16, k = 16 (tcgen05.mma, cta_group::1)
    per_cycle = chip.peak_flops("bf16") / (chip.matrix.count * chip.clock_hz)
    # One token x 4096 outputs: as laid out, M pads 1 -> 128 rows (128 x 4096 outputs); swapped (C^T = B^T A^T),
    # the 4096 outputs fill M and the token pads N to 16 (4096 x 16): eight times fewer padded FLOPs.
    assert step_cycles(chip, "bf16", 1, 4096, 4096) == pytest.approx(2 * 4096 * 16 * 4096 / per_cycle, rel=1e-12)
    # 130 x 16: as laid out 256 x 16 = 4,096 outputs; swapped 128 x 144 = 18,432: the layout as given wins.
    assert step_cycles(chip, "bf16", 130, 16, 16) == pytest.approx(2 * 256 * 16 * 16 / per_cycle, rel=1e-12)
    # Whole tiles either way: no padding.
    assert step_cycles(chip, "bf16", 256, 64, 256) == pytest.approx(2 * 256 * 64 * 256 / per_cycle, rel=1e-12)
