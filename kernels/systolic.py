"""A cycle-stepped systolic-array emulator: C = A @ B on ONE array of R x C PEs, every cycle simulated.

This is the executed ground truth for the closed-form model in ``accelsim/cost/systolic.py``; it
does not import it.  Each fold is a ``jax.lax.scan`` over cycles; the cycle count is the number of
scan steps during which the fold was still busy, i.e. until its last result had left the array.

The machine
-----------
* PE (i, j), i in [0, R) down, j in [0, C) across.  Each PE has a horizontal operand register,
  a vertical register (a streamed operand, a partial sum or a shifting stationary value) and,
  where the dataflow needs one, an f32 accumulator or a stationary-operand register.
* **One cycle** = one clock edge: every PE reads what its left and upper neighbours latched in
  the previous cycle (or what the edge feeder presents this cycle, for column 0 / row 0), does at
  most one f32 multiply-accumulate, and latches its results.  So a value moves one PE right or one
  PE down per cycle, and a PE's output is usable by its neighbour in the next cycle.
* Edge feeders (the on-chip buffer side) inject the horizontal operand at the left edge of each
  row and the vertical operand at the top of each column.  Input skewing is done by the feeders:
  row i (column j) starts i (j) cycles after row 0 (column 0), so that matching operands meet.
* Values carry a tag through the array (the reduction index of an OS operand, the output row of a
  WS/IS operand or partial sum; -1 = no value), as the valid/control bits of a real array do; the
  output buffer places each result by its tag.  The simulation checks, every cycle, that the
  operands meeting in a PE (and a partial sum and the operand it meets) carry the same tag.
* The array is fixed-function: a fold always drives all R x C PEs.  A partial (edge) fold is
  zero-padded, so it takes as many cycles as a full one; only real (unpadded) elements count as
  edge traffic.
* By default folds run one after another on the one array with no overlap: a fold's cycles start
  with its preload (if any) and end with the cycle in which its last result leaves the array; the
  next fold starts on the following cycle.  Total cycles = sum over folds (each fold's count is
  simulated).  With ``stationary_double_buffered`` (WS/IS: a shadow stationary bank per PE) or
  ``drain_overlaps`` (OS: an output register and drain chain per PE) consecutive folds share the
  array and the whole matmul is simulated as one stream of cycles: ``kernels/systolic_stream.py``
  defines those machines cycle by cycle.

Dataflows (T = length of the stream through one fold)
------------------------------------------------------
``output_stationary`` (OS): PE (i, j) accumulates C[r0+i, c0+j].  Row i of the A tile enters the
left edge of row i (A[r0+i, s] at cycle s+i) and column j of B enters the top of column j
(B[s, c0+j] at cycle s+j), T = K, so PE (i, j) does its s-th MAC at cycle s+i+j.  When every PE
has done its T MACs, the accumulators shift down one row per cycle and leave through the bottom
edge (R cycles).  Folds: ceil(M/R) x ceil(N/C).
    cycles per fold = (T + R + C - 2) streaming + R drain = 2R + C + K - 2.

``weight_stationary`` (WS): PE (i, j) holds B[k0+i, c0+j].  Preload: the tile enters the top of
each column bottom row first and shifts down one row per cycle (R cycles).  Then A streams in from
the left: A[m, k0+i] enters row i at stream cycle m+i, T = M; partial sums flow down the columns
(PE (i, j) adds A[m, k0+i] * B[k0+i, c0+j] to the sum from PE (i-1, j)) and the sum for C[m, c0+j]
leaves the bottom of column j at the end of stream cycle m + (R-1) + j.
Folds: ceil(K/R) x ceil(N/C); reduction folds are added up in the output (accumulator) buffer.
    cycles per fold = R preload + (T + R + C - 2) streaming = 2R + C + M - 2.

``input_stationary`` (IS): PE (i, j) holds A[c0+j, k0+i] (A^T); B^T streams from the left
(B[k0+i, n] enters row i at stream cycle n+i, T = N) and the sum for C[c0+j, n] leaves the bottom
of column j.  It is WS on C^T = B^T A^T.  Folds: ceil(K/R) x ceil(M/C).
    cycles per fold = 2R + C + N - 2.

For WS and IS this is SCALE-Sim's schedule (Samajdar et al., arXiv:1811.02883: 2*Sr + Sc + T - 2
per fold with the full array size; its v2/v3 trace generators, scalesim/compute/systolic_compute_ws.py
and _is.py, likewise charge arr_row weight-load cycles and pad partial folds with null requests); the
total SCALE-Sim reports is one less per layer, the 0-based cycle of its last write.
SCALE-Sim's OS fold hides the R drain cycles under the skew (T + R + C - 2); see the docstring of
``accelsim/cost/systolic.py`` for where we differ and why (``scalesim_cycles`` equals SCALE-Sim 3.0.0's
report exactly, tests/test_scalesim_reference.py).

Edge traffic reported by ``systolic_run`` counts, in the simulation, the real elements each feeder
injects (A, B) and each real result that leaves the bottom edge (partial sums of non-final
reduction folds and final outputs separately).

Implementation
--------------
``systolic_run`` runs eagerly (it returns Python ints).  The host lays out the folds
(``kernels/systolic_folds.py``) and the feeders' skew buffers (what each edge lane presents at
each feeder clock) with numpy; a jitted, vmapped ``lax.scan`` steps the cycles of up to 32 folds
side by side; the host's output buffer places and accumulates the results.  The scan simulates
the R x C array inside a grid padded to a power of two (at least 8) and runs for a static upper
bound of cycles (the stream length padded to a power of two, at least 32), so one compilation
serves many shapes: the count is the busy cycles, not the scan length.  Meant for small arrays (up
to a few dozen PEs a side).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from accelsim.chips.spec import DATAFLOWS
from accelsim.errors import AccelsimError
from kernels.systolic_cells import bucket, collect, count, row, shift_down, shift_right
from kernels.systolic_folds import os_layout, stationary_layout
from kernels.systolic_stream import output_stream, stationary_stream

__all__ = ["DATAFLOWS", "SystolicRun", "reference_matmul", "systolic_matmul", "systolic_run"]


@dataclass(frozen=True)
class SystolicRun:
    """What one emulated matmul produced and counted."""

    product: jax.Array          # (M, N) float32
    cycles: int                 # total cycles, all folds on one array
    fold_cycles: tuple[int, ...]  # simulated cycles of each fold, in fold order
    a_elements: int             # real A elements injected at the array's edges
    b_elements: int             # real B elements injected at the array's edges
    out_partial_elements: int   # real partial sums of non-final reduction folds leaving the array
    out_final_elements: int     # real final results leaving the array

    def operand_bytes(self, in_bytes: float, acc_bytes: float = 4) -> dict[str, float]:
        """Counted edge traffic in bytes, keyed like ``accelsim.cost.systolic.array_operand_bytes``."""
        return {
            "a": self.a_elements * in_bytes,
            "b": self.b_elements * in_bytes,
            "out_partial": self.out_partial_elements * acc_bytes,
            "out_final": self.out_final_elements * acc_bytes,
        }


def reference_matmul(a, b) -> jax.Array:
    """Plain-jnp reference: a @ b with f32 accumulation."""
    return jnp.matmul(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32),
                      precision=jax.lax.Precision.HIGHEST)


def _scan_length(grid_r: int, grid_c: int, stream_cap: int) -> int:
    """A static upper bound on one fold's cycles; the count itself comes from the busy flags."""
    return 2 * (grid_r + grid_c + stream_cap) + 2


# The engines simulate a physical R x C array inside a static GR x GC grid (GR >= R, GC >= C).
# Operands only move right and down and results leave at row R-1, so the grid's extra PEs (below
# row R-1 / right of column C-1) are downstream of every real PE and cannot affect it; the feeders
# never inject into them and the control signals and checks ignore them.  This keeps the number of
# compilations small: one per (engine, GR, GC, stream capacity), not per matmul shape.

def _os_fold(fa, fat, fb, fbt, real_r, real_c, R, C, T):
    """Output-stationary fold.

    fa/fat: (cap + GR, GR) skew buffer of A's rows (values, tags = reduction index or -1), lane i
    feeding row i; fb/fbt: (cap + GC, GC) skew buffer of B's columns.  R, C: array; T = K.
    """
    GR, GC = fa.shape[1], fb.shape[1]
    cap = fa.shape[0] - GR
    i32, f32 = jnp.int32, jnp.float32
    ri, cj = jnp.arange(GR)[:, None], jnp.arange(GC)[None, :]
    exists = (ri < R) & (cj < C)
    zeros, none = jnp.zeros((GR, GC), f32), jnp.full((GR, GC), -1, i32)
    carry = dict(
        a=zeros, at=none, b=zeros, bt=none,            # operand registers, tags = reduction index
        acc=zeros, nmac=jnp.zeros((GR, GC), i32),      # accumulators, MACs done
        rt=jnp.where(exists, ri, -1).astype(i32),      # output row of the result each PE holds
        nout=i32(0), cycles=i32(0), a_in=i32(0), b_in=i32(0), bad=i32(0),
    )
    last_a, last_b = fa.shape[0] - 1, fb.shape[0] - 1

    def cycle(s, t):
        busy = s["nout"] < R * C
        draining = jnp.all((s["nmac"] == T) | ~exists)   # every PE finished its T MACs earlier
        ia, ib = jnp.minimum(t, last_a), jnp.minimum(t, last_b)
        ea, eat, eb, ebt = row(fa, ia), row(fat, ia), row(fb, ib), row(fbt, ib)
        a, at = shift_right(s["a"], ea), shift_right(s["at"], eat)
        b, bt = shift_down(s["b"], eb), shift_down(s["bt"], ebt)
        mac = (at >= 0) & (bt >= 0) & exists
        # drain: the accumulators move down one row; row R-1's leave the array
        exit_v = jnp.where(draining, row(s["acc"], R - 1), 0.0)
        exit_t = jnp.where(draining, row(s["rt"], R - 1), -1)
        acc = jnp.where(draining, shift_down(s["acc"], jnp.zeros((GC,), f32)),
                        s["acc"] + jnp.where(mac, a * b, 0.0))
        rt = jnp.where(draining, shift_down(s["rt"], jnp.full((GC,), -1, i32)), s["rt"])
        new = dict(a=a, at=at, b=b, bt=bt, acc=acc, nmac=s["nmac"] + mac, rt=rt,
                   nout=s["nout"] + count(exit_t >= 0), cycles=s["cycles"] + busy,
                   a_in=s["a_in"] + count((eat >= 0) & (ri[:, 0] < real_r)),
                   b_in=s["b_in"] + count((ebt >= 0) & (cj[0] < real_c)),
                   bad=s["bad"] + count(mac & (at != bt)))          # A[i, s] must meet B[s, j]
        return new, (exit_v, exit_t)

    length = _scan_length(GR, GC, cap)
    final, (vals, tags) = jax.lax.scan(cycle, carry, jnp.arange(length, dtype=i32))
    return dict(exit_v=vals, exit_t=tags, cycles=final["cycles"], done=final["nout"] == R * C,
                bad=final["bad"], stat_in=i32(0), x_in=final["a_in"], y_in=final["b_in"])


def _ws_fold(w, fx, fxt, real_r, real_c, R, C, T):
    """Weight-stationary fold.

    w: (GR, GC) stationary tile; fx/fxt: (cap + GR, GR) skew buffer of the stream (values, tags =
    stream row or -1), lane i feeding row i.  Returns, per cycle, the sums that left the bottom
    edge of each column and their tags (output rows).
    """
    GR, GC = w.shape
    cap = fx.shape[0] - GR
    i32, f32 = jnp.int32, jnp.float32
    ri, cj = jnp.arange(GR)[:, None], jnp.arange(GC)[None, :]
    exists = (ri < R) & (cj < C)
    zeros, none = jnp.zeros((GR, GC), f32), jnp.full((GR, GC), -1, i32)
    carry = dict(
        p=i32(0), w=zeros, wv=jnp.zeros((GR, GC), bool),  # preload feeder clock, stationary registers
        s=i32(0), a=zeros, at=none,                        # stream feeder clock, operand registers
        ps=zeros, pt=none,                                 # partial sums, tags = output row
        nout=i32(0), cycles=i32(0), w_in=i32(0), x_in=i32(0), bad=i32(0),
    )
    last = fx.shape[0] - 1

    def cycle(s, _):
        busy = s["nout"] < T * C
        loaded = jnp.all(s["wv"] | ~exists)
        # preload: the top feeder pushes the tile bottom row first; the columns shift down
        push = ~loaded
        src = R - 1 - s["p"]
        wreg = jnp.where(push, shift_down(s["w"], row(w, jnp.clip(src, 0, GR - 1))), s["w"])
        wv = jnp.where(push, shift_down(s["wv"], jnp.ones((GC,), bool)), s["wv"])
        # stream (once loaded): skewed rows enter from the left, partial sums move down
        i = jnp.minimum(s["s"], last)
        ex, ext = row(fx, i), jnp.where(loaded, row(fxt, i), -1)
        a, at = shift_right(s["a"], ex), shift_right(s["at"], ext)
        ps_in = shift_down(s["ps"], jnp.zeros((GC,), f32))
        pt_in = shift_down(s["pt"], jnp.full((GC,), -1, i32))
        live = (at >= 0) & exists
        ps = ps_in + jnp.where(live, a * wreg, 0.0)
        pt = jnp.where(live, at, -1)
        exit_v, exit_t = row(ps, R - 1), row(pt, R - 1)      # row R-1's sums leave the array
        new = dict(p=s["p"] + push, w=wreg, wv=wv, s=s["s"] + loaded, a=a, at=at, ps=ps, pt=pt,
                   nout=s["nout"] + count(exit_t >= 0), cycles=s["cycles"] + busy,
                   w_in=s["w_in"] + jnp.where(push & (src < real_r), count(cj[0] < real_c), 0),
                   x_in=s["x_in"] + count((ext >= 0) & (ri[:, 0] < real_r)),
                   # a partial sum must meet the operand of its own output row
                   bad=s["bad"] + count((pt_in >= 0) & (pt_in != at) & exists))
        return new, (exit_v, exit_t)

    length = _scan_length(GR, GC, cap)
    final, (vals, tags) = jax.lax.scan(cycle, carry, None, length=length)
    return dict(exit_v=vals, exit_t=tags, cycles=final["cycles"], done=final["nout"] == T * C,
                bad=final["bad"], stat_in=final["w_in"], x_in=final["x_in"], y_in=i32(0))


_DIMS = (None, None, None)   # R, C, T are shared by every fold of a chunk
_OS_CHUNK = jax.jit(jax.vmap(_os_fold, in_axes=(0, 0, 0, 0, 0, 0) + _DIMS))
_WS_CHUNK = jax.jit(jax.vmap(_ws_fold, in_axes=(0, 0, 0, 0, 0) + _DIMS))
_FOLDS_PER_CALL = 32          # folds simulated side by side per call (the last call is padded)



def _skew_buffers(streams: np.ndarray, lanes: int, T: int, cap: int, grid: int):
    """The feeders' skew buffers for a batch of streams (F, T, L): lane l delayed by l cycles.

    Row s of a buffer is what the feeder presents at its clock s: lane l carries stream row s - l
    (tag s - l) if that exists and l < ``lanes`` (the array's extent), else nothing (tag -1).
    Lanes past the fold's real data but inside the array carry zeros: the array is fixed-function.
    """
    F, _, L = streams.shape
    m = np.arange(cap + grid)[:, None] - np.arange(grid)[None, :]          # (cap + grid, grid)
    lane = np.broadcast_to(np.arange(grid), m.shape)
    valid = (m >= 0) & (m < T) & (lane < lanes)
    padded = np.zeros((F, T, grid), np.float32)
    padded[:, :, :L] = streams
    vals = np.where(valid, padded[:, np.clip(m, 0, T - 1), lane], 0.0).astype(np.float32)
    tags = np.broadcast_to(np.where(valid, m, -1).astype(np.int32), vals.shape)
    return vals, np.ascontiguousarray(tags)


def _simulate(engine, per_fold: list, R: int, C: int, T: int) -> dict:
    """Run the folds through the jitted engine ``_FOLDS_PER_CALL`` at a time; stack the results."""
    calls, sizes = [], []
    for start in range(0, len(per_fold[0]), _FOLDS_PER_CALL):
        chunk = [x[start:start + _FOLDS_PER_CALL] for x in per_fold]
        n = len(chunk[0])
        if n < _FOLDS_PER_CALL:                       # pad with empty folds, dropped below
            chunk = [np.concatenate([x, np.zeros((_FOLDS_PER_CALL - n,) + x.shape[1:], x.dtype)])
                     for x in chunk]
        calls.append(engine(*chunk, np.int32(R), np.int32(C), np.int32(T)))   # dispatched async
        sizes.append(n)
    outs = jax.device_get(calls)
    return {k: np.concatenate([o[k][:n] for o, n in zip(outs, sizes)]) for k in outs[0]}


def _collect(res: dict, rows: int) -> np.ndarray:
    """The output buffer for folds simulated side by side: fold f's exits go to out[f]."""
    tags = res["exit_t"]                                    # (F, cycles, GC)
    folds = np.broadcast_to(np.arange(tags.shape[0])[:, None, None], tags.shape)
    return collect(res["exit_v"], tags, folds, tags.shape[0], rows)


def _os_emulate(a: np.ndarray, b: np.ndarray, R: int, C: int, GR: int, GC: int, overlap: bool) -> dict:
    L = os_layout(a, b, R, C, GR, GC)
    T = a.shape[1]
    if overlap:
        res = output_stream(L["a_rows"], L["a_real"], L["b_cols"], L["b_real"], R, C, T)
        out, tags, folds = res["tiles"], res["exit_t"][None], res["exit_f"][None]
    else:
        cap = bucket(T, 32)
        fa, fat = _skew_buffers(L["a_rows"][:, :, :R], R, T, cap, GR)
        fb, fbt = _skew_buffers(L["b_cols"][:, :, :C], C, T, cap, GC)
        res = _simulate(_OS_CHUNK, [fa, fat, fb, fbt, L["real_r"].astype(np.int32), L["real_c"].astype(np.int32)],
                        R, C, T)
        out, tags = _collect(res, GR), res["exit_t"]                         # (F, GR, GC)
        folds = np.broadcast_to(np.arange(tags.shape[0])[:, None, None], tags.shape)
    M, N = a.shape[0], b.shape[1]
    product = np.zeros((M, N), np.float32)
    for f, (i, j) in enumerate(zip(L["im"], L["jn"])):
        rr, rc = L["real_r"][f], L["real_c"][f]
        product[i * R:i * R + rr, j * C:j * C + rc] = out[f, :rr, :rc]
    safe = np.maximum(folds, 0)                             # real results: inside their fold's tile
    real = (tags >= 0) & (tags < L["real_r"][safe]) & (np.arange(GC) < L["real_c"][safe])
    return dict(res, product=product, a=int(np.sum(res["x_in"])), b=int(np.sum(res["y_in"])),
                partial=0, final=int(real.sum()))


def _stationary_emulate(a: np.ndarray, b: np.ndarray, R: int, C: int, GR: int, GC: int, dataflow: str,
                        overlap: bool) -> dict:
    stat, stream = (b, a) if dataflow == "weight_stationary" else (a.T, b.T)   # stationary (K, P), stream (T, K)
    L = stationary_layout(stat, stream, R, C, GR, GC)
    T, P = stream.shape[0], stat.shape[1]
    if overlap:
        res = stationary_stream(L["tiles"], L["tile_real"], L["lanes"], L["lane_real"], R, C, T)
        sums, tags, folds = res["sums"], res["exit_t"][None], res["exit_f"][None]
    else:
        fx, fxt = _skew_buffers(L["lanes"][:, :, :R], R, T, bucket(T, 32), GR)
        res = _simulate(_WS_CHUNK, [L["tiles"], fx, fxt, L["real_r"].astype(np.int32),
                                    L["real_c"].astype(np.int32)], R, C, T)
        sums, tags = _collect(res, T), res["exit_t"]                          # (F, T, GC)
        folds = np.broadcast_to(np.arange(tags.shape[0])[:, None, None], tags.shape)
    # The output (accumulator) buffer adds the reduction folds' partial sums, in fold order, in f32.
    out = np.zeros((T, P), np.float32)
    for f, j in enumerate(L["jp"]):
        out[:, j * C:j * C + L["real_c"][f]] += sums[f, :, :L["real_c"][f]]
    product = out if dataflow == "weight_stationary" else out.T
    stat_el, stream_el = int(np.sum(res["stat_in"])), int(np.sum(res["x_in"]))
    a_el, b_el = (stream_el, stat_el) if dataflow == "weight_stationary" else (stat_el, stream_el)
    safe = np.maximum(folds, 0)
    real = (tags >= 0) & (np.arange(GC) < L["real_c"][safe])
    last = L["last"][safe]
    return dict(res, product=product, a=a_el, b=b_el, partial=int((real & ~last).sum()),
                final=int((real & last).sum()))


def _emulate(a: np.ndarray, b: np.ndarray, R: int, C: int, dataflow: str, overlap: bool) -> dict:
    """Fold the matmul onto the array, simulate every cycle, assemble the product and the counts."""
    GR, GC = bucket(R, 8), bucket(C, 8)
    if dataflow == "output_stationary":
        r = _os_emulate(a, b, R, C, GR, GC, overlap)
    else:
        r = _stationary_emulate(a, b, R, C, GR, GC, dataflow, overlap)
    if not np.all(r["done"]) or np.any(r["bad"]):
        raise RuntimeError(f"systolic emulator fault: done={np.all(r['done'])}, tag errors={np.sum(r['bad'])}")
    fold_cycles = r["intervals"] if overlap else tuple(int(c) for c in r["cycles"])
    return dict(r, fold_cycles=fold_cycles)


def _check_args(a, b, rows, cols, dataflow):
    if dataflow not in DATAFLOWS:
        raise AccelsimError(f"unknown dataflow '{dataflow}': expected one of {', '.join(DATAFLOWS)}")
    for name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise AccelsimError(f"{name} must be a positive integer, got {value!r}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise AccelsimError(f"a and b must be (M, K) and (K, N) matrices, got shapes {a.shape} and {b.shape}")
    if 0 in a.shape or 0 in b.shape:
        raise AccelsimError(f"a and b must be non-empty, got shapes {a.shape} and {b.shape}")


def systolic_run(a, b, rows: int, cols: int, dataflow: str, *, stationary_double_buffered: bool = False,
                 drain_overlaps: bool = False) -> SystolicRun:
    """Emulate a @ b on one rows x cols array, cycle by cycle; return product, cycles and edge counts.

    ``stationary_double_buffered`` (weight/input-stationary) and ``drain_overlaps``
    (output-stationary) run the folds back to back on shared hardware (``kernels/systolic_stream.py``);
    each flag is ignored by the dataflows it does not describe.  Then ``fold_cycles`` holds each
    fold's interval (first streamed row to the next fold's), not its cycles alone.  Runs eagerly
    (the cycle count is a Python int); the cycle loops are jitted ``lax.scan``s.
    """
    a = np.asarray(jnp.asarray(a).astype(jnp.float32))      # bf16 -> f32 is exact
    b = np.asarray(jnp.asarray(b).astype(jnp.float32))
    _check_args(a, b, rows, cols, dataflow)
    overlap = bool(drain_overlaps if dataflow == "output_stationary" else stationary_double_buffered)
    r = _emulate(a, b, int(rows), int(cols), dataflow, overlap)
    return SystolicRun(product=jnp.asarray(r["product"]), cycles=sum(r["fold_cycles"]),
                       fold_cycles=r["fold_cycles"], a_elements=r["a"], b_elements=r["b"],
                       out_partial_elements=r["partial"], out_final_elements=r["final"])


def systolic_matmul(a, b, rows: int, cols: int, dataflow: str, **overlap: bool) -> tuple[jax.Array, int]:
    """(a @ b computed by the emulated array with f32 accumulation, exact total cycle count);
    ``overlap``: the keyword flags of ``systolic_run``."""
    run = systolic_run(a, b, rows, cols, dataflow, **overlap)
    return run.product, run.cycles
