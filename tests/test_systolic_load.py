"""The double-buffered load path's width (``[systolic] load_bytes_per_cycle``): a fold of a block step lasts
the longer of its stream at the MAC rate and its stationary tile's install, counted in bytes."""

from __future__ import annotations

import dataclasses

import pytest

from accelsim.chips import load_chip
from accelsim.cost.compute import flops_per_cycle_per_unit, step_cycles


def _speedup(chip, dtype: str) -> float:
    return flops_per_cycle_per_unit(chip, dtype) / (2 * chip.matrix.rows * chip.matrix.cols)


def test_trainium2_installs_a_stationary_tile_in_32_cycles_by_bytes():
    trn2 = load_chip("trainium2")  # 128 x 128, 1,024 B per clock (NKI: LS_II ~= 128/4 = 32 cycles)
    # Batch-1 decode, one fold: the one streamed row takes 1 / speed-up cycles, the bf16 tile
    # 128 * 128 * 2 B / 1,024 = 32 cycles; fp8 packs twice the elements and loads its 16 KiB in 16.
    assert step_cycles(trn2, "bf16", 1, 128, 128) == pytest.approx(32.0)
    assert step_cycles(trn2, "fp8", 1, 128, 128) == pytest.approx(16.0)
    # Four folds of K x two of N: eight installs.
    assert step_cycles(trn2, "bf16", 1, 512, 256) == pytest.approx(8 * 32.0)
    # A long stream hides the install: T = 512 rows at the MAC rate.
    assert step_cycles(trn2, "bf16", 512, 128, 128) == pytest.approx(512 / _speedup(trn2, "bf16"))


def test_groq_fp16_install_is_twice_int8s_not_four_times():
    groq = load_chip("groq-lpu")  # 320 x 320 planes, 5,120 B per clock (assumed, see the chip file)
    # fp16 multiplies at a quarter of the int8 rate, but a tile installs at the width of its bytes:
    # 320 * 320 * 2 / 5,120 = 40 cycles against int8's 320 * 320 / 5,120 = 20.
    assert step_cycles(groq, "bf16", 1, 320, 320) == pytest.approx(40.0)
    assert step_cycles(groq, "int8", 1, 320, 320) == pytest.approx(20.0)


def test_without_a_width_a_tile_loads_one_row_per_cycle():
    tpu = load_chip("tpu-v5e")  # no load_bytes_per_cycle: the emulator's one-row load chain
    assert tpu.systolic.load_bytes_per_cycle == 0.0
    assert step_cycles(tpu, "bf16", 1, 128, 128) == pytest.approx(128 / _speedup(tpu, "bf16"))
    # The same chip given one row's bytes per clock (128 x 2 B) prices the same fold the same.
    row_wide = dataclasses.replace(tpu, systolic=dataclasses.replace(tpu.systolic, load_bytes_per_cycle=256.0))
    assert step_cycles(row_wide, "bf16", 1, 128, 128) == pytest.approx(128.0)

