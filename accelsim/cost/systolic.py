"""Closed-form cycles and edge traffic of a folded matmul on ONE systolic array (pure Python ints).

The same conventions as the cycle-stepped emulator in ``kernels/systolic.py`` (whose module
docstring defines them cycle by cycle); the emulator is the executed ground truth and the tests
check these formulas against it exactly.  In short, for C = A @ B with A (m, k), B (k, n) on an
array of ``rows`` (R) x ``cols`` (C) PEs:

=================  =====================  ==================  ==========================
dataflow           held in the PEs        streamed (length T)  folds
=================  =====================  ==================  ==========================
output_stationary  C tile (R x C)         A rows, B columns    ceil(m/R) * ceil(n/C), T = k
weight_stationary  B tile (k: R, n: C)    A rows (T = m)       ceil(k/R) * ceil(n/C)
input_stationary   A^T tile (k: R, m: C)  B^T rows (T = n)     ceil(k/R) * ceil(m/C)
=================  =====================  ==================  ==========================

Every fold, edge folds included, takes ``2R + C + T - 2`` cycles on its own: the array is a
fixed-function unit, so a partial tile is padded with idle (zero) PEs and keeps the full array's
fill, skew and drain latency.

* output_stationary: T + R + C - 2 skewed streaming cycles (the last MAC happens in PE (R-1, C-1)
  at cycle T-1 + R-1 + C-1), then R cycles to shift the accumulators out of the bottom edge.
* weight/input_stationary: R cycles to shift the stationary tile in from the top edge, then
  T + R + C - 2 cycles until the partial sum of the last streamed row leaves column C-1 at the
  bottom edge.

How consecutive folds overlap (``systolic_cycles``; emulated in ``kernels/systolic_stream.py``):

* no overlap (the default): each fold starts the cycle after the previous fold's last result has
  left the array, so  cycles = F * (2R + C + T - 2).
* ``stationary_double_buffered`` (weight/input-stationary): two stationary banks per PE and a
  separate load chain; fold f+1's tile loads (R cycles) while fold f streams, and fold f+1 streams
  right behind fold f once its tile is in.  Folds start every max(T, R) cycles:
  cycles = (F - 1) * max(T, R) + 2R + C + T - 2.
* ``drain_overlaps`` (output-stationary): an output register per PE; fold f+1 streams right behind
  fold f while fold f's sums drain (R cycles per column).  Folds start every max(T, R) cycles:
  cycles = (F - 1) * max(T, R) + 2R + C + T - 2.

Each flag describes one family of dataflows and is ignored by the others, so a chip's
``[systolic]`` flags can be passed as they are.  At T = 1 (batch-1 decode, weight-stationary) the
double-buffered array spends R cycles per fold, loading weights, instead of 2R + C - 1.

Where we differ from SCALE-Sim
-------------------------------
SCALE-Sim (Samajdar et al., "SCALE-Sim: Systolic CNN Accelerator Simulator", arXiv:1811.02883;
github.com/scalesim-project, PyPI ``scalesim`` 2.0.2 and 3.0.0) builds per-cycle demand matrices,
one row per cycle, in ``create_{ifmap,filter,ofmap}_demand_mat`` of
``scalesim/compute/systolic_compute_{os,ws,is}.py``: the folds are concatenated with no overlap,
partial folds padded with null requests (as here).  Its GEMM topology row ``M, N, K`` is our
(m, k) x (k, n) with m = M, k = K, n = N (``topologies.load_arrays_gemm`` makes it an M x K ifmap
and K x N filter), and its Sr, Sc, T per dataflow are ours.  Per fold the demand rows are:

* weight/input-stationary: an ``arr_row``-row weight-load prefix, the T stream rows, an
  ``arr_col - 1`` suffix and ``arr_row - 1`` rows of skew: 2R + C + T - 2, our no-overlap fold.
  Stationary row i is read at fold cycle R-1-i, streamed element t of row i at R + t + i, and the
  sum of streamed row t in column j written at 2R - 1 + t + j: the cycles they enter or leave the
  array here, so the two conventions agree cycle for cycle.
* output-stationary: T stream rows plus an ``arr_col - 1`` (``arr_row - 1``) gap, skewed over the
  rows (columns): T + R + C - 2.  The ofmap demand writes PE row i of column j at fold row
  T - 1 + (R-1-i) + j, so the bottom rows' sums are written before their last MAC (PE (i, j) does
  it at T - 1 + i + j) and the fold ends with the last MAC: no drain.  Here a column's sums leave
  through its one bottom port after its last PE has finished, so a lone fold takes R cycles more
  (2R + C + T - 2: +17% at R = C = 128, T = 512), and with ``drain_overlaps`` the fold after it
  streams while they drain.
* its COMPUTE_REPORT "Total Cycles" (``service_memory_requests`` in
  ``scalesim/memory/double_buffered_scratchpad_mem.py``; v3's "Total Cycles (incl. prefetch)" adds
  the DRAM prefetch) is the 0-based cycle in which its last ofmap row is served: without memory
  stalls one less than the demand matrices' length, once per layer.  ``scalesim_cycles`` gives
  that reported number.
* edge traffic: SCALE-Sim counts the real (non-null) requests of its demand matrices as SRAM reads
  and writes, and its OS ofmap write count adds R + C more per fold; ``array_operand_bytes`` counts
  the real elements crossing the array's edges (weight/input-stationary partial sums included).
* SCALE-Sim has no double-buffered stationary operand: its folds never overlap.

Edge traffic (``array_operand_bytes``): elements that cross the array's edges from/to its on-chip
buffer, counting only real elements (padding of partial folds is not read):

* the stationary operand is loaded once per fold, so each of its elements exactly once;
* the streamed operand is re-streamed once per fold along the other tiled dimension
  (A once per column fold in weight-stationary, B once per column fold in input-stationary,
  A once per column fold and B once per row fold in output-stationary);
* results: output-stationary drains each final output once; weight/input-stationary emit a partial
  sum for every output element in every reduction fold: the last fold's are the final outputs, the
  earlier ones are partials that the buffer accumulates (that read-modify-write happens in the
  accumulator buffer, not at the array edge, and is not counted here).

Inputs are counted at ``in_bytes`` per element, results at ``acc_bytes`` (f32 accumulators).
The returned dict's values are disjoint, so ``sum(d.values())`` is the array's total edge traffic.
"""

from __future__ import annotations

import math
import numbers

from accelsim.errors import AccelsimError

# The same names as accelsim.chips.spec.DATAFLOWS (not imported: that package pulls in jax).
DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")

__all__ = [
    "DATAFLOWS", "array_operand_bytes", "fold_count", "fold_cycles", "fold_interval", "scalesim_cycles",
    "stream_length", "systolic_cycles",
]


def _check(dataflow: str, m: int, k: int, n: int, rows: int, cols: int) -> None:
    if dataflow not in DATAFLOWS:
        raise AccelsimError(f"unknown dataflow '{dataflow}': expected one of {', '.join(DATAFLOWS)}")
    for name, value in (("m", m), ("k", k), ("n", n), ("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise AccelsimError(f"{name} must be a positive integer, got {value!r}")


def stream_length(dataflow: str, m: int, k: int, n: int) -> int:
    """T: how many operand vectors stream through the array per fold (k, m or n)."""
    return {"output_stationary": k, "weight_stationary": m, "input_stationary": n}[dataflow]


def _tiled(dataflow: str, m: int, k: int, n: int) -> tuple[int, int]:
    """The two dimensions laid over the array's rows and columns."""
    return {"output_stationary": (m, n), "weight_stationary": (k, n), "input_stationary": (k, m)}[dataflow]


def fold_count(dataflow: str, m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Number of array-sized folds the (m, k) x (k, n) matmul is split into."""
    _check(dataflow, m, k, n, rows, cols)
    along_rows, along_cols = _tiled(dataflow, m, k, n)
    return math.ceil(along_rows / rows) * math.ceil(along_cols / cols)


def fold_cycles(dataflow: str, m: int, k: int, n: int, rows: int, cols: int) -> int:
    """Cycles of one fold of the (m, k) x (k, n) matmul: 2*rows + cols + T - 2 (edge folds alike)."""
    _check(dataflow, m, k, n, rows, cols)
    return 2 * rows + cols + stream_length(dataflow, m, k, n) - 2


def fold_interval(dataflow: str, m: int, k: int, n: int, rows: int, cols: int, *,
                  stationary_double_buffered: bool = False, drain_overlaps: bool = False) -> int:
    """Cycles from one fold's start to the next's: max(T, rows) where the dataflow's flag overlaps
    folds (``stationary_double_buffered`` for weight/input-stationary, ``drain_overlaps`` for
    output-stationary), else the whole fold."""
    overlapped = drain_overlaps if dataflow == "output_stationary" else stationary_double_buffered
    if overlapped:
        _check(dataflow, m, k, n, rows, cols)
        return max(stream_length(dataflow, m, k, n), rows)
    return fold_cycles(dataflow, m, k, n, rows, cols)


def systolic_cycles(dataflow: str, m: int, k: int, n: int, rows: int, cols: int, *,
                    stationary_double_buffered: bool = False, drain_overlaps: bool = False) -> int:
    """Cycles of the whole folded matmul on one array: (folds - 1) x interval + one whole fold."""
    interval = fold_interval(dataflow, m, k, n, rows, cols, stationary_double_buffered=stationary_double_buffered,
                             drain_overlaps=drain_overlaps)
    return (fold_count(dataflow, m, k, n, rows, cols) - 1) * interval + fold_cycles(dataflow, m, k, n, rows, cols)


def scalesim_cycles(dataflow: str, m: int, k: int, n: int, rows: int, cols: int) -> int:
    """SCALE-Sim v2/v3's reported "Total Cycles" for the same matmul without memory stalls (see the
    module docstring): folds x (T + R + C - 2) - 1 for output-stationary, folds x (2R + C + T - 2) - 1
    for weight/input-stationary."""
    per_fold = fold_cycles(dataflow, m, k, n, rows, cols) - (rows if dataflow == "output_stationary" else 0)
    # SCALE-Sim reports the index of its last cycle, not a count (0 for one PE, one MAC).
    return fold_count(dataflow, m, k, n, rows, cols) * per_fold - 1


def array_operand_bytes(dataflow: str, m: int, k: int, n: int, rows: int, cols: int,
                        in_bytes: float, acc_bytes: float = 4) -> dict[str, float]:
    """Bytes across the array's edges: {'a', 'b'} read, {'out_partial', 'out_final'} written.

    See the module docstring for the convention; the four values are disjoint.
    """
    _check(dataflow, m, k, n, rows, cols)
    for name, value in (("in_bytes", in_bytes), ("acc_bytes", acc_bytes)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
            raise AccelsimError(f"{name} must be a positive number, got {value!r}")
    row_folds_m, col_folds_n = math.ceil(m / rows), math.ceil(n / cols)
    k_folds, col_folds_m = math.ceil(k / rows), math.ceil(m / cols)
    if dataflow == "output_stationary":
        a_el, b_el, results = m * k * col_folds_n, k * n * row_folds_m, m * n
    elif dataflow == "weight_stationary":
        a_el, b_el, results = m * k * col_folds_n, k * n, m * n * k_folds
    else:  # input_stationary
        a_el, b_el, results = m * k, k * n * col_folds_m, m * n * k_folds
    final = m * n
    return {
        "a": a_el * in_bytes,
        "b": b_el * in_bytes,
        "out_partial": (results - final) * acc_bytes,
        "out_final": final * acc_bytes,
    }
