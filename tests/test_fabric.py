"""The on-chip mesh crossing (accelsim/cost/fabric.py): by hand, in plans and traced kernels alike."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accelsim.chips import load_chip
from accelsim.chips.spec import Fabric
from accelsim.cost.fabric import fabric_cycles
from accelsim.tiling.matmul import plan_matmul

WAFER = load_chip("cerebras-wse3")


def test_mesh_crossing_by_hand():
    # One core crosses nothing; P cores laid out as a square cross ceil(sqrt(P)) hops in and as many out.
    assert fabric_cycles(WAFER, 1) == 0.0
    assert fabric_cycles(WAFER, 4) == 2 * 2 * WAFER.fabric.hop_cycles
    assert fabric_cycles(WAFER, 10) == 2 * 4 * WAFER.fabric.hop_cycles  # ceil(sqrt(10)) = 4
    # More blocks than cores: the kernel still spans only the wafer (900,000 cores: a 949 x 949 square).
    assert fabric_cycles(WAFER, 10**9) == 2 * 949 * WAFER.fabric.hop_cycles
    np.testing.assert_array_equal(fabric_cycles(WAFER, np.array([1, 4, 10])), np.array([0.0, 4.0, 8.0]))


def test_torus_halves_the_crossing_and_chips_without_a_fabric_pay_nothing():
    torus = dataclasses.replace(WAFER, fabric=Fabric("torus2d", 3.0, "test"))
    assert fabric_cycles(torus, 64) == 8 * 3.0
    assert fabric_cycles(load_chip("h100-sxm"), 10**6) == 0.0
    assert fabric_cycles(load_chip("groq-lpu"), np.array([5, 7])).tolist() == [0.0, 0.0]


def test_a_planned_kernel_pays_its_own_crossing_exactly():
    # A batch-1 GEMV in fixed blocks: the split-K kernel runs splits * gm * gn = 8 * 1 * 8 = 64 blocks, one
    # per core, so it crosses 2 * 8 hops; the combine kernel's grid (gm, gn) = (1, 8) runs gm = 1 block at a time
    # (its first axis) and crosses nothing. Everything else is the same with and without the fabric.
    blocks = {"bm": 1, "bn": 512, "bk": 512, "splits": 8}
    with_mesh = plan_matmul(1, 4096, 4096, WAFER, "bf16", blocks=blocks)
    without = plan_matmul(1, 4096, 4096, dataclasses.replace(WAFER, fabric=None), "bf16", blocks=blocks)
    assert with_mesh.total_cycles - without.total_cycles == pytest.approx(2 * 8 * WAFER.fabric.hop_cycles, abs=1e-6)
    assert with_mesh.bytes_per_level == without.bytes_per_level


def test_the_plan_search_trades_cores_against_the_crossing():
    # Without a fabric a batch-1 GEMV spreads over as many cores as it can; the crossing makes the search
    # stop at fewer, and the result is slower than the fabric-free floor but no slower than the widest split.
    free = plan_matmul(1, 4096, 4096, dataclasses.replace(WAFER, fabric=None), "bf16")
    meshed = plan_matmul(1, 4096, 4096, WAFER, "bf16")

    def cores(plan) -> int:
        grid = plan.grid
        return int(np.prod(grid[:-1]))

    assert cores(meshed) < cores(free)
    assert meshed.time_s > free.time_s
    widest = plan_matmul(1, 4096, 4096, WAFER, "bf16", blocks=free.blocks)
    assert meshed.time_s <= widest.time_s
    assert 0 < fabric_cycles(WAFER, cores(meshed)) < meshed.total_cycles


def test_the_crossing_reproduces_waferllms_measured_gemv_on_wse2():
    # WaferLLM (He et al., OSDI 2025), Table 6: MeshGEMV of [1, 16K] x [16K, 16K] in 1.2 us and of
    # [1, 32K] x [32K, 32K] in 2.03 us on a WSE-2. A WSE-2 from the WSE-3 file's structure: 850,000 cores
    # (Cerebras's WSE-2 figure), a 4-wide FP16 FMAC (two 64-bit operand reads per cycle, Hot Chips 34),
    # 1.1 GHz (WaferLLM section 7), 20 PB/s of SRAM. Validation against a measurement, so a tolerance.
    cores, clock = 850_000, 1.1e9
    flops = {"bf16": cores * 4 * 2 * clock, "fp16": cores * 4 * 2 * clock}
    matrix = dataclasses.replace(WAFER.matrix, count=cores, dense_flops=flops, sparse_flops={})
    sram = dataclasses.replace(WAFER.memory[0], instances=cores, bandwidth_bytes_per_s=20e15)
    wse2 = dataclasses.replace(WAFER, matrix=matrix, memory=(sram, *WAFER.memory[1:]), clock_hz=clock)
    for k, measured in ((16384, 1.2e-6), (32768, 2.03e-6)):
        assert plan_matmul(1, k, k, wse2, "bf16").time_s == pytest.approx(measured, rel=0.15)
