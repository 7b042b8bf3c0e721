"""Rung 3 of the validation ladder: the cycle-stepped systolic emulator vs the closed-form model.

The emulator (kernels/systolic.py) executes every cycle; the model (accelsim/cost/systolic.py) is a
formula.  Cycles and edge traffic must agree exactly, and the product must match a float64
reference.  The hand-worked examples below follow the cycle convention written in the emulator's
module docstring, counted by hand, not by calling the model.
"""

from __future__ import annotations

import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.cost.systolic import (
    DATAFLOWS, array_operand_bytes, fold_count, fold_cycles, fold_interval, scalesim_cycles, systolic_cycles,
)
from accelsim.errors import AccelsimError
from kernels.systolic import systolic_matmul, systolic_run

OS, WS, IS = "output_stationary", "weight_stationary", "input_stationary"
EPS32 = float(np.finfo(np.float32).eps)


def _inputs(m: int, k: int, n: int, dtype: str, seed: int):
    """Random inputs (float32 drawn via numpy, cast to bf16 for bf16) and their f64 values."""
    rng = np.random.default_rng(seed)
    a = jnp.asarray(rng.standard_normal((m, k)).astype(np.float32))
    b = jnp.asarray(rng.standard_normal((k, n)).astype(np.float32))
    if dtype == "bf16":
        a, b = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
    return a, b, np.asarray(a.astype(jnp.float32), np.float64), np.asarray(b.astype(jnp.float32), np.float64)


OVERLAP = dict(stationary_double_buffered=True, drain_overlaps=True)


def _check_emulator_against_model(rows, cols, m, k, n, dtype, seed, **flags):
    a, b, a64, b64 = _inputs(m, k, n, dtype, seed)
    ref = a64 @ b64
    # f32 accumulation of k products (bf16 products are exact in f32): |error| <= ~k eps sum|a||b|
    tol = 2 * k * EPS32 * (np.abs(a64) @ np.abs(b64)) + 1e-30
    in_bytes = 4 if dtype == "f32" else 2
    for dataflow in DATAFLOWS:
        run = systolic_run(a, b, rows, cols, dataflow, **flags)
        product = np.asarray(run.product, np.float64)
        assert run.product.dtype == jnp.float32 and product.shape == (m, n)
        assert np.all(np.abs(product - ref) <= tol), dataflow
        # (b) executed cycles == the closed-form model, fold by fold and in total
        assert len(run.fold_cycles) == fold_count(dataflow, m, k, n, rows, cols)
        if not flags:
            assert set(run.fold_cycles) == {fold_cycles(dataflow, m, k, n, rows, cols)}
        # overlapped, every fold but the first (with the first tile's load) and the last (with the
        # final drain) starts max(T, rows) cycles after the previous one
        assert set(run.fold_cycles[1:-1]) <= {fold_interval(dataflow, m, k, n, rows, cols, **flags)}
        assert run.cycles == systolic_cycles(dataflow, m, k, n, rows, cols, **flags), dataflow
        # (c) counted edge traffic == the closed-form bytes (overlap moves no element more or less)
        assert run.operand_bytes(in_bytes) == array_operand_bytes(dataflow, m, k, n, rows, cols, in_bytes)


SHAPES = dict(m=st.integers(1, 40), k=st.integers(1, 40), n=st.integers(1, 40),
              dtype=st.sampled_from(["f32", "bf16"]), seed=st.integers(0, 2**31 - 1))


@settings(derandomize=True, deadline=None, max_examples=25)
@given(rows=st.integers(1, 16), cols=st.integers(1, 16), **SHAPES)
def test_emulator_matches_reference_and_cycle_model(rows, cols, m, k, n, dtype, seed):
    _check_emulator_against_model(rows, cols, m, k, n, dtype, seed)


@settings(derandomize=True, deadline=None, max_examples=20)
@given(rows=st.integers(1, 8), cols=st.integers(1, 8), **SHAPES)
def test_overlapped_emulator_matches_cycle_model(rows, cols, m, k, n, dtype, seed):
    # Folds back to back: double-buffered stationary tiles (WS, IS) and overlapped drains (OS).
    _check_emulator_against_model(rows, cols, m, k, n, dtype, seed, **OVERLAP)


# --- hand-worked examples (convention: kernels/systolic.py module docstring) ---------------------

def test_two_by_two_array_two_by_two_matmul_by_hand():
    a = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    b = jnp.array([[5.0, 6.0], [7.0, 8.0]])
    expected = np.array([[19.0, 22.0], [43.0, 50.0]])
    # OS: PE (i, j) does its s-th MAC at cycle s+i+j; the last, s=1 in PE (1,1), is cycle 3, so
    #     4 streaming cycles; then 2 drain cycles (row 1, then row 0, leave the bottom edge): 6.
    # WS: 2 preload cycles (B's row 1, then row 0, pushed in at the top); then C[m, j] leaves
    #     column j at stream cycle m + 1 + j; the last, C[1, 1], at stream cycle 3: 2 + 4 = 6.
    # IS: the same machine as WS with A^T held and B^T streamed: 6.
    for dataflow in DATAFLOWS:
        product, cycles = systolic_matmul(a, b, 2, 2, dataflow)
        np.testing.assert_array_equal(np.asarray(product), expected)
        assert cycles == 6, dataflow


def test_folded_cycles_by_hand():
    a = jnp.arange(6.0).reshape(3, 2)          # M=3, K=2
    b = jnp.arange(4.0).reshape(2, 2)          # N=2
    expected = np.asarray(a) @ np.asarray(b)
    # 2x2 array. OS: M=3 needs 2 row folds (the second holds 1 real row, zero-padded), each
    # 2 + 2 + 2 - 2 = 4 streaming + 2 drain = 6 cycles: 12.
    # WS: B (2x2) is one fold; 2 preload + the last result C[2, 1] leaves at stream cycle
    # 2 + 1 + 1 = 4, so 5 stream cycles: 7.
    # IS: A^T (K=2 x M=3) needs 2 column folds, each 2 preload + stream of N=2 rows (last result at
    # stream cycle 1 + 1 + 1 = 3, 4 cycles): 6 per fold, 12.
    for dataflow, cycles in ((OS, 12), (WS, 7), (IS, 12)):
        run = systolic_run(a, b, 2, 2, dataflow)
        np.testing.assert_array_equal(np.asarray(run.product), expected)
        assert run.cycles == cycles, dataflow
        assert run.fold_cycles == ((6, 6) if dataflow != WS else (7,))


def test_one_pe_and_edge_fold_by_hand():
    a = jnp.ones((2, 3))
    b = jnp.ones((3, 1))
    # 1x1 array, M=2, K=3, N=1.  OS: each of the 2 outputs is a fold of 3 MACs + 1 drain = 4: 8.
    # WS: each of the K*N = 3 weights is a fold: 1 preload + 2 streamed rows = 3: 9.
    # IS: each of the K*M = 6 elements of A is a fold: 1 preload + 1 streamed row = 2: 12.
    for dataflow, cycles in ((OS, 8), (WS, 9), (IS, 12)):
        product, got = systolic_matmul(a, b, 1, 1, dataflow)
        np.testing.assert_array_equal(np.asarray(product), np.full((2, 1), 3.0))
        assert got == cycles, dataflow
    # A 1x1x1 product on a 4x4 array still pays the full array: OS streams until PE (3, 3) has
    # done its MAC (cycle 0 + 3 + 3 = 6, so 7 cycles) and drains 4 rows: 11.
    # WS: 4 preload cycles + the result leaves column 3 at stream cycle 0 + 3 + 3 = 6: 4 + 7 = 11.
    for dataflow in DATAFLOWS:
        assert systolic_matmul(jnp.ones((1, 1)), jnp.ones((1, 1)), 4, 4, dataflow)[1] == 11


def test_edge_traffic_by_hand():
    a = jnp.ones((2, 3), jnp.bfloat16)         # M=2, K=3
    b = jnp.ones((3, 2), jnp.bfloat16)         # N=2
    # 2x2 array, bf16 inputs (2 B), f32 results (4 B).
    # OS: folds = 1 row fold x 1 column fold; A and B stream once: 6 + 6 elements; 4 results.
    # WS: 2 reduction folds (k = 0..1 and k = 2): B loaded once (6); A streamed once per column
    #     fold (1): 6; each fold emits 2x2 sums: 4 partial (first fold) + 4 final.
    # IS: A held (6); B^T streamed once per column fold of M (1): 6; 4 partial + 4 final.
    expected = {
        OS: {"a": 12, "b": 12, "out_partial": 0, "out_final": 16},
        WS: {"a": 12, "b": 12, "out_partial": 16, "out_final": 16},
        IS: {"a": 12, "b": 12, "out_partial": 16, "out_final": 16},
    }
    for dataflow in DATAFLOWS:
        assert array_operand_bytes(dataflow, 2, 3, 2, 2, 2, in_bytes=2) == expected[dataflow]
        assert systolic_run(a, b, 2, 2, dataflow).operand_bytes(2) == expected[dataflow]
    # 1x1 array, M=K=N=2, OS: A re-streamed per column fold (2), B per row fold (2).
    assert array_operand_bytes(OS, 2, 2, 2, 1, 1, in_bytes=4) == {"a": 32, "b": 32, "out_partial": 0, "out_final": 16}


def test_model_formulas_by_hand():
    # 128x128 array, 256 x 512 x 384: OS folds 2*3=6 of 256+128+512-2; WS ceil(512/128)*3=12 of
    # 256+128+256-2; IS 4*2=8 of 256+128+384-2.
    assert systolic_cycles(OS, 256, 512, 384, 128, 128) == 6 * 894
    assert systolic_cycles(WS, 256, 512, 384, 128, 128) == 12 * 638
    assert systolic_cycles(IS, 256, 512, 384, 128, 128) == 8 * 766


def _overlapped_by_hand(a, b, dataflow: str, cycles: int, fold_cycles: tuple[int, ...], **flags) -> None:
    run = systolic_run(a, b, 2, 2, dataflow, **flags)
    np.testing.assert_array_equal(np.asarray(run.product), np.asarray(a) @ np.asarray(b))
    assert (run.cycles, run.fold_cycles) == (cycles, fold_cycles)


def test_double_buffered_stationary_by_hand():
    a = jnp.arange(1.0, 5.0).reshape(1, 4)      # M=1, K=4
    b = jnp.arange(8.0).reshape(4, 2)           # N=2
    # 2x2 array, WS: 2 reduction folds of T = 1 row.  Without overlap each fold is 2 preload +
    # (1 + 2 + 2 - 2) = 5 cycles: 10.  Double-buffered: tile 0 loads in cycles 0-1 (column 0
    # latched at the end of cycle 1), fold 0 streams at cycle 2; tile 1 loads in cycles 2-3 (into
    # the other bank) and fold 1 streams at cycle 4; its sum leaves column 1 at the end of cycle
    # 4 + 0 + 1 + 1 = 6: 7 cycles; fold intervals 4 (load + wait) and 3.
    _overlapped_by_hand(a, b, WS, 7, (4, 3), stationary_double_buffered=True)
    assert systolic_run(a, b, 2, 2, WS).cycles == 10
    assert systolic_run(a, b, 2, 2, WS, drain_overlaps=True).cycles == 10     # an OS flag: ignored


def test_overlapped_drain_by_hand():
    a = jnp.arange(12.0).reshape(4, 3)          # M=4, K=3
    b = jnp.arange(6.0).reshape(3, 2)           # N=2
    # 2x2 array, OS: 2 row folds, T = K = 3.  A fold alone: its last MAC in PE (1, 1) at cycle
    # 2 + 1 + 1 = 4, then column 1 drains in cycles 5, 6: 7 cycles; 14 without overlap.  With the
    # drain overlapped fold 1 streams right behind fold 0 (from cycle 3, as T >= R): PE (i, j)
    # writes its fold-1 sum at the end of cycle 3 + 2 + i + j, after its output register was
    # vacated in cycle 4 + i + j (column j drains fold 0 in cycles 4 + j and 5 + j, from the
    # cycle after its row 1 wrote at the end of cycle 3 + j).  Fold 1 ends 7 cycles after it
    # started: 10.
    _overlapped_by_hand(a, b, OS, 10, (3, 7), drain_overlaps=True)
    assert systolic_run(a, b, 2, 2, OS).cycles == 14
    # K = 1 < R: fold 1 may start only R = 2 cycles after fold 0 (a column drains in 2 cycles):
    # 2 + (1 + 4 + 2 - 2) = 7.
    assert systolic_matmul(a[:, :1], b[:1], 2, 2, OS, drain_overlaps=True)[1] == 7


def test_overlapped_model_formulas_by_hand():
    # 128x128 array, batch-1 WS decode matmul 1 x 8192 x 8192: 64 x 64 folds of T = 1.
    # No overlap: 4096 x (256 + 128 + 1 - 2) = 4096 x 383.  Double-buffered: a fold every 128
    # cycles (the weight load), plus the last fold whole: 4095 x 128 + 383.
    assert systolic_cycles(WS, 1, 8192, 8192, 128, 128) == 4096 * 383
    assert systolic_cycles(WS, 1, 8192, 8192, 128, 128, stationary_double_buffered=True) == 4095 * 128 + 383
    # T = 256 >= R: the stream binds: 11 x 256 + 638 for WS 256 x 512 x 384 (12 folds).
    assert systolic_cycles(WS, 256, 512, 384, 128, 128, stationary_double_buffered=True) == 11 * 256 + 638
    assert systolic_cycles(OS, 256, 512, 384, 128, 128, drain_overlaps=True) == 5 * 512 + 894
    assert systolic_cycles(OS, 256, 512, 384, 128, 128, stationary_double_buffered=True) == 6 * 894


def test_scalesim_counts_by_hand():
    # SCALE-Sim v2/v3 (scalesim/compute/systolic_compute_{os,ws,is}.py) per fold, on a 128x128
    # array: OS: T stream rows + (cols - 1) gap rows, skewed over 128 rows (+127): for 256 x 512 x
    # 384, 6 folds of 512 + 127 + 127 = 766.  WS: 128 load rows + T + 127, skewed (+127): 12 folds
    # of 128 + 256 + 127 + 127 = 638.  IS: 8 folds of 128 + 384 + 127 + 127 = 766.  Its reported
    # "Total Cycles" is the index of the last of those cycles, counted from 0: one less per layer.
    assert scalesim_cycles(OS, 256, 512, 384, 128, 128) == 6 * 766 - 1
    assert scalesim_cycles(WS, 256, 512, 384, 128, 128) == 12 * 638 - 1
    assert scalesim_cycles(IS, 256, 512, 384, 128, 128) == 8 * 766 - 1
    # 4x4 array, M=5, K=7, N=3 (SCALE-Sim 3.0.0 reports 25, 29 and 51). OS: 2 row folds x 1 column
    # fold of 7 + 3 + 3 = 13 rows: 26 - 1.  WS: 2 reduction folds x 1 of 4 + 5 + 3 + 3 = 15: 30 - 1.
    # IS: 2 reduction folds x 2 column folds (M = 5) of 4 + 3 + 3 + 3 = 13: 52 - 1.
    assert [scalesim_cycles(df, 5, 7, 3, 4, 4) for df in (OS, WS, IS)] == [25, 29, 51]
    # One PE, M=2, K=3, N=1: OS 2 folds of 3 rows; WS 3 folds of 1 + 2 + 0 + 0; IS 6 folds of 1 + 1.
    assert [scalesim_cycles(df, 2, 3, 1, 1, 1) for df in (OS, WS, IS)] == [5, 8, 11]
    # SCALE-Sim's OS fold has no drain: R cycles fewer than ours, and the same for WS and IS.
    assert systolic_cycles(OS, 5, 7, 3, 4, 4) - scalesim_cycles(OS, 5, 7, 3, 4, 4) == 2 * 4 + 1
    for dataflow in (WS, IS):
        assert systolic_cycles(dataflow, 5, 7, 3, 4, 4) == scalesim_cycles(dataflow, 5, 7, 3, 4, 4) + 1


def test_tpu_v5e_batch1_decode_matmul_is_memory_bound_when_weights_double_buffer():
    import dataclasses

    from accelsim.chips.loader import load_chip
    from accelsim.tiling.matmul import plan_matmul

    chip = load_chip("tpu-v5e")
    assert chip.systolic.stationary_double_buffered
    # Published figures: 1.5 GHz, 4 MXUs of 128 x 128, 197 TFLOP/s bf16, HBM 819 GB/s.
    clock, arrays, side, peak, hbm = 1.5e9, 4, 128, 197e12, 819e9
    speedup = peak / (arrays * clock) / (2 * side * side)      # 1.002: the vendor peak vs 2*128*128 per clock
    hbm_s = 8192 * 8192 * 2 / hbm                              # the bf16 weights, read once: 163.9 us
    # Before: every one of the 64 x 64 weight folds (T = M = 1) pays 2*128 + 128 + 1 - 2 = 383
    # cycles, whatever the blocks; 4096 folds over 4 MXUs: 1024 x 383 cycles = 261 us > 163.9 us.
    floor_before_s = 4096 / arrays * 383 / speedup / clock
    assert floor_before_s > hbm_s
    before = plan_matmul(1, 8192, 8192, dataclasses.replace(
        chip, systolic=dataclasses.replace(chip.systolic, stationary_double_buffered=False)), "bf16")
    assert before.bound == "compute"
    assert before.compute_cycles / clock >= floor_before_s * (1 - 1e-12)
    # After: a block of (1, bk, bn) holds F = bk/128 * bn/128 folds; with the next step's first tile staged
    # behind this step's last fold, every fold of every step starts 128 cycles after the previous one:
    # F x 128 cycles a step. The grid runs ceil(gm * gn / 4) waves of gk such blocks.
    plan = plan_matmul(1, 8192, 8192, chip, "bf16")
    bm, bk, bn = (plan.blocks[x] for x in ("bm", "bk", "bn"))
    assert plan.blocks["splits"] == 1 and bm == 1
    folds = (bk // side) * (bn // side)
    waves, gk = -(-(8192 // bn) // arrays), 8192 // bk
    step = folds * 128
    assert plan.compute_cycles == pytest.approx(waves * gk * step / speedup, rel=1e-12)
    # e.g. (1, 256, 2048): 32 folds, 32 x 128 = 4096 cycles, x 32 k blocks: 87.2 us.
    assert plan.compute_cycles / clock < hbm_s <= plan.memory_cycles["hbm"] / clock * (1 + 1e-12)
    assert plan.bound == "hbm"


def test_dataflow_names_match_chip_spec():
    from accelsim.chips.spec import DATAFLOWS as CHIP_DATAFLOWS
    assert DATAFLOWS == CHIP_DATAFLOWS


def test_cost_model_does_not_import_jax():
    code = "import sys, accelsim.cost.systolic; print('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("call, word", [
    (lambda: systolic_cycles("row_stationary", 2, 2, 2, 2, 2), "dataflow"),
    (lambda: systolic_cycles(OS, 0, 2, 2, 2, 2), "m"),
    (lambda: fold_cycles(WS, 2, -1, 2, 2, 2), "k"),
    (lambda: fold_count(IS, 2, 2, 2.5, 2, 2), "n"),
    (lambda: systolic_cycles(OS, 2, 2, 2, 0, 2), "rows"),
    (lambda: systolic_cycles(OS, 2, 2, 2, 2, True), "cols"),
    (lambda: array_operand_bytes(OS, 2, 2, 2, 2, 2, in_bytes=0), "in_bytes"),
    (lambda: systolic_matmul(jnp.ones((2, 2)), jnp.ones((2, 2)), 2, 2, "diagonal"), "dataflow"),
    (lambda: systolic_matmul(jnp.ones((2, 2)), jnp.ones((2, 2)), 0, 2, OS), "rows"),
    (lambda: systolic_matmul(jnp.ones((2, 2)), jnp.ones((2, 2)), 2, -3, WS), "cols"),
    (lambda: systolic_matmul(jnp.ones((2, 3)), jnp.ones((2, 2)), 2, 2, IS), "shapes"),
    (lambda: systolic_matmul(jnp.ones((0, 3)), jnp.ones((3, 2)), 2, 2, OS), "non-empty"),
])
def test_bad_input_raises_one_line_error(call, word):
    with pytest.raises(AccelsimError) as info:
        call()
    message = str(info.value)
    assert re.search(rf"\b{word}\b", message) and "\n" not in message
