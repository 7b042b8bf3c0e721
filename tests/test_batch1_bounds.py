"""What binds batch-1 decode on every preset: main-memory bandwidth wherever the weights stream from HBM; on
the SRAM machines what their chip files say is slower than their SRAM (Groq's weight install, the wafer's mesh).

At batch 1 every weight is read once per token, two FLOPs per weight: far below any GPU's or TPU's
FLOP-per-byte balance point, so the weights' bytes at main-memory bandwidth bound the step.
"""

from __future__ import annotations

import pytest

from accelsim.chips import load_chip, preset_names
from accelsim.cost.compute import step_cycles
from accelsim.models.estimate import run_estimate

HBM = [name for name in preset_names() if name not in ("host", "groq-lpu", "cerebras-wse3")]


@pytest.fixture(scope="module")
def batch1():
    chips = [load_chip(name) for name in HBM + ["groq-lpu", "cerebras-wse3"]]
    runs = run_estimate("llama-3.1-8b", chips, batch=1, prompt_len=128, gen_len=16).runs
    return {run.chip: run for run in runs}


@pytest.mark.parametrize("name", HBM)
def test_batch1_decode_is_bound_by_main_memory(batch1, name):
    chip = load_chip(name)
    assert batch1[name].binding_limit == chip.main_memory.name == "hbm"
    # and no faster than reading every weight once at the datasheet bandwidth: the bf16 weights less the
    # embedding table, of which decode gathers one row (128,256 x 4,096 x 2 bytes)
    run = batch1[name]
    streamed = run.capacity.weight_bytes - 128256 * 4096 * 2
    assert run.tpot_s * run.capacity.chips >= streamed / chip.main_memory.bandwidth_bytes_per_s


def test_groq_batch1_is_bound_by_the_weight_install_not_the_sram(batch1):
    groq = load_chip("groq-lpu")
    assert batch1["groq-lpu"].binding_limit == "compute"
    # One 320 x 320 bf16 fold at batch 1: its install, 320 * 320 * 2 B / 5,120 B per clock = 40 clocks, against
    # 320 * 320 * 2 B / (80 TB/s / 0.9 GHz / 4 planes = 22,222 B per clock per plane) = 9.2 clocks from SRAM.
    assert step_cycles(groq, "bf16", 1, 320, 320) == pytest.approx(40.0)
    sram_clocks = 320 * 320 * 2 / (groq.main_memory.bandwidth_bytes_per_s / groq.clock_hz / groq.matrix.count)
    assert sram_clocks == pytest.approx(9.216, rel=1e-3)


def test_the_wafer_batch1_is_bound_by_its_mesh(batch1):
    assert batch1["cerebras-wse3"].binding_limit == "fabric"
