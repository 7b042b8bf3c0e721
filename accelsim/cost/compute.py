"""Cycles one block step's matrix product takes on a chip's matrix unit, and the operand bytes it reads.

A "block step" is one grid step of a kernel: a (m, k) x (k, n) product on one unit (one systolic
array, one SM's tensor cores, one vector core). Steps on different output blocks run on different
units in parallel; see ``waves``.
"""

from __future__ import annotations

import math

from accelsim.chips.spec import Chip
from accelsim.cost.systolic import array_operand_bytes, fold_count, fold_interval, stream_length, systolic_cycles
from accelsim.dtypes import dtype_bytes

ACC_BYTES = 4  # accumulators are f32 everywhere we model


def flops_per_cycle_per_unit(chip: Chip, dtype: str) -> float:
    """Peak dense FLOP per clock of one matrix unit."""
    return chip.peak_flops(dtype) / (chip.matrix.count * chip.clock_hz)


def step_cycles(chip: Chip, dtype: str, m: int, k: int, n: int) -> float:
    """Cycles of one (m, k) x (k, n) block product on one unit, edge waste included.

    systolic: the exact fold-by-fold count of the array (validated against kernels/systolic.py),
    scaled down when the vendor's peak exceeds one array's 2*rows*cols FLOP/clk (several arrays per
    unit), so a full array runs at the published peak. Where the chip file's ``[systolic]`` flags
    overlap consecutive folds (double-buffered stationary tiles, overlapped output drains), they overlap
    across block steps too: the next step's first tile is staged (its block is already double-buffered
    in the staging memory) while this step's last fold streams, so a step costs ``folds x interval``
    and only the kernel's very first fold pays its fill, skew and drain (under 2R + C cycles a kernel,
    not counted). Without overlap every fold, in every step, pays its whole latency. Where the chip file
    gives the double-buffered load path's width (``[systolic] load_bytes_per_cycle``), a fold lasts the
    longer of its stream at the MAC rate (T / speed-up) and its tile's install, rows x cols x element bytes
    / width: the install is counted in bytes, so packed 8-bit tiles load twice the elements per clock and a
    slower 16-bit MAC mode (Groq's fp16) does not slow the install. The emulator models the one-row load.
    tensor_core: FLOPs padded up to whole MMA tiles (the chip file's ``[mma]`` m x n x k) at the SM's peak rate,
    in whichever orientation pads less: a kernel may compute C^T = B^T A^T so that a short side (decode's few
    tokens) lies along the instruction's narrow N axis ("swap AB"; TensorRT-LLM's Blackwell GEMMs take the
    weight matrix as A, trtllmGen_gemm_export/GemmInterface.h: M "is the total number of output channels if
    A is the weight matrix").
    vector: FLOPs at the unit's peak rate.
    """
    unit = chip.matrix
    if unit.kind == "systolic":
        per_array_peak = 2 * unit.rows * unit.cols
        speedup = flops_per_cycle_per_unit(chip, dtype) / per_array_peak
        overlap = chip.systolic
        flags = dict(stationary_double_buffered=overlap.stationary_double_buffered,
                     drain_overlaps=overlap.drain_overlaps)
        overlapped = flags["drain_overlaps" if unit.dataflow == "output_stationary" else "stationary_double_buffered"]
        if overlapped:
            folds = fold_count(unit.dataflow, m, k, n, unit.rows, unit.cols)
            load = overlap.load_bytes_per_cycle
            if load and unit.dataflow != "output_stationary":
                install = unit.rows * unit.cols * dtype_bytes(dtype) / load
                return folds * max(stream_length(unit.dataflow, m, k, n) / speedup, install)
            return folds * fold_interval(unit.dataflow, m, k, n, unit.rows, unit.cols, **flags) / speedup
        return systolic_cycles(unit.dataflow, m, k, n, unit.rows, unit.cols, **flags) / speedup
    if unit.kind == "tensor_core":
        tile = chip.mma
        output_tiles = min(_round_up(m, tile.m) * _round_up(n, tile.n), _round_up(n, tile.m) * _round_up(m, tile.n))
        padded = 2 * output_tiles * _round_up(k, tile.k)
        return padded / flops_per_cycle_per_unit(chip, dtype)
    return 2 * m * k * n / flops_per_cycle_per_unit(chip, dtype)


def step_operand_bytes(chip: Chip, dtype_bytes: float, m: int, k: int, n: int) -> float:
    """Bytes the matrix unit moves to and from the staging level for one block product (a systolic array's
    edge traffic, less its partial sums where the chip file gives an ``[accumulator]`` to hold them)."""
    unit = chip.matrix
    if unit.kind == "vector":
        return (m * k + k * n) * dtype_bytes + m * n * ACC_BYTES
    if unit.kind == "tensor_core":
        # Each warp group loads its operand fragments from shared memory once per block step and
        # accumulates in registers: A and B blocks are each read once (register reuse assumed ideal).
        return (m * k + k * n) * dtype_bytes
    edges = array_operand_bytes(unit.dataflow, m, k, n, unit.rows, unit.cols, dtype_bytes, ACC_BYTES)
    if chip.accumulator is not None:
        # Partial sums accumulate in the chip's accumulator store (Trainium's PSUM), not the staging memory.
        edges.pop("out_partial")
    return float(sum(edges.values()))


def exp_cycles(chip: Chip, exps: float) -> float:
    """Cycles the chip's vector/special-function units spend on ``exps`` exponentials (0 where the chip
    file gives no rate). Added to the matrix unit's cycles: softmax and matmuls are not assumed to overlap."""
    return exps / chip.exp_per_s * chip.clock_hz if chip.exp_per_s else 0.0


def waves(parallel_blocks: int, units: int) -> int:
    """Rounds of work when ``parallel_blocks`` independent blocks share ``units`` units (wave quantisation)."""
    return math.ceil(parallel_blocks / units)


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple
