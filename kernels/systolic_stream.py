"""Folds back to back on one systolic array: the overlapped modes of the cycle-stepped emulator.

``kernels/systolic.py`` simulates each fold alone (nothing overlaps, so folds are independent).
Here the whole folded matmul is ONE stream of cycles, because consecutive folds share hardware:

* ``stationary_double_buffered`` (weight/input-stationary): every PE has two stationary registers
  (banks 0 and 1) and each column a separate load chain.  The load feeder pushes a tile in bottom
  row first, column j skewed j cycles behind column 0 (a triangular delay line); when a tile's top
  row reaches row 0 of column j, the column's PEs copy the chain into bank ``tile % 2`` (the shadow
  bank).  Streamed operands carry their fold number and multiply the bank of their own fold, so a
  PE can hold fold f's tile while fold f+1's is loaded behind it.  Control, both by events the
  array raises: tile f+1 starts loading the cycle fold f starts streaming (its bank held tile f-1,
  whose last operand is past by the time the chain reaches it), and fold f+1 starts streaming once
  all of fold f's stream is issued and tile f+1 has been latched in column 0.  So fold f streams
  from cycle R + f * max(T, R).
* ``drain_overlaps`` (output-stationary): every PE has an accumulator and an output register; the
  output registers of a column form a drain chain to the bottom edge.  A PE's last MAC of a fold
  writes the sum into its output register (not its accumulator, which restarts at 0), so the next
  fold's operands can follow the last ones with no gap.  A column drains a fold (one row per cycle,
  R cycles) from the cycle after its bottom PE has written; registers already holding the next
  fold's sums stay put.  The drain empties a column in R cycles, so the feeder admits a fold no
  sooner than R cycles after the previous one started (a start credit: the one rule here that is
  a count rather than an event the array raises; the clobber check below would catch it being
  too loose).  So fold f streams from cycle f * max(T, R).

The emulator checks every cycle that an operand meets the bank of its own fold, that partial sums
and operands carry matching tags, and that no sum is written into an undrained output register.
Feeders stream every fold's rows in fold order; cycle 0 is the first load (WS/IS) or stream (OS)
cycle and the count ends with the cycle the last result leaves the array.  The scan runs in
windows of ``_WINDOW`` cycles (one compilation per engine and grid size); the host passes each
window the feeder rows it can reach.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kernels.systolic_cells import collect, count, delay_line, row, shift_down, shift_right

_WINDOW = 256          # cycles per jitted call


def _delay(stages: tuple, xs: tuple):
    """Advance several parallel delay lines (values, tags, ...) by one clock."""
    out = [delay_line(s, x) for s, x in zip(stages, xs)]
    return tuple(o[0] for o in out), tuple(o[1] for o in out)


def _lines(n: int):
    """Empty delay lines for n lanes: values, two tags (-1 = none), real flags."""
    return (jnp.zeros((n, n), jnp.float32), jnp.full((n, n), -1, jnp.int32),
            jnp.full((n, n), -1, jnp.int32), jnp.zeros((n, n), bool))


def _feed(buf, real, idx, issue, lanes, tag, fold):
    """What an unskewed feeder presents this cycle: a buffer row (or nothing) on its first ``lanes`` lanes."""
    width = buf.shape[1]
    on = issue & (jnp.arange(width) < lanes)
    i = jnp.clip(idx, 0, buf.shape[0] - 1)
    return (jnp.where(on, row(buf, i), 0.0), jnp.where(on, tag, -1), jnp.where(on, fold, -1),
            on & row(real, i))


def _ws_window(carry, xs, xr, ws, wr, p0, q0, n_folds, R, C, T):
    """WS/IS with double-buffered stationary registers: ``_WINDOW`` cycles from ``carry``.

    xs/xr: stream rows p0.. (values, real flags; row p = fold p // T, stream row p % T);
    ws/wr: load rows q0.. (row q = tile q // R, tile row R-1 - q % R: bottom row first).
    """
    GR, GC = carry["ps"].shape
    i32 = jnp.int32
    ri, cj = jnp.arange(GR)[:, None], jnp.arange(GC)[None, :]
    exists = (ri < R) & (cj < C)

    def cycle(s, _):
        issue = (s["p"] < n_folds * T) & (s["p"] // T < s["latched0"])
        started = (s["p"] + issue + T - 1) // T             # folds whose stream has begun, this cycle's too
        load = (s["q"] < n_folds * R) & (s["q"] // R <= started)
        # load path: skewed by column, shifted down each column's chain, latched into a bank when full
        lq, (ev, et, ef, er) = _delay(s["lq"], _feed(ws, wr, s["q"] - q0, load, C, R - 1 - s["q"] % R, s["q"] // R))
        lc, lt, lf = shift_down(s["lc"], ev), shift_down(s["lt"], et), shift_down(s["lf"], ef)
        latch = (lt[0] == 0) & (lf[0] >= 0)                  # tile row 0 has reached the top PE
        bank = lf[0] % 2
        put = [latch & (bank == b) for b in (0, 1)]
        w = jnp.stack([jnp.where(put[b][None, :], lc, s["w"][b]) for b in (0, 1)])
        wf = jnp.stack([jnp.where(put[b][None, :], lf, s["wf"][b]) for b in (0, 1)])
        # stream: skewed by row, operands move right, partial sums move down; MACs use the old banks
        sq, (xv, xm, xf, xreal) = _delay(s["sq"], _feed(xs, xr, s["p"] - p0, issue, R, s["p"] % T, s["p"] // T))
        a, am, af = shift_right(s["a"], xv), shift_right(s["am"], xm), shift_right(s["af"], xf)
        live = (am >= 0) & exists
        odd = (af % 2) == 1
        wsel, wfsel = jnp.where(odd, s["w"][1], s["w"][0]), jnp.where(odd, s["wf"][1], s["wf"][0])
        ps_in = shift_down(s["ps"], jnp.zeros((GC,), jnp.float32))
        pm_in, pf_in = shift_down(s["pm"], jnp.full((GC,), -1, i32)), shift_down(s["pf"], jnp.full((GC,), -1, i32))
        ps = ps_in + jnp.where(live, a * wsel, 0.0)
        pm, pf = jnp.where(live, am, -1), jnp.where(live, af, -1)
        exit_v, exit_m, exit_f = row(ps, R - 1), row(pm, R - 1), row(pf, R - 1)
        bad = (count(live & (wfsel != af))                                          # wrong bank
               + count((pm_in >= 0) & exists & ((pm_in != am) | (pf_in != af))))   # sum meets wrong row
        first = issue & (s["p"] % T == 0)
        new = dict(s, p=s["p"] + issue, q=s["q"] + load, latched0=s["latched0"] + latch[0],
                   lq=lq, lc=lc, lt=lt, lf=lf, w=w, wf=wf, sq=sq, a=a, am=am, af=af, ps=ps, pm=pm, pf=pf,
                   nout=s["nout"] + count(exit_m >= 0), cycles=s["cycles"] + (s["nout"] < n_folds * T * C),
                   stat_in=s["stat_in"] + count(er), x_in=s["x_in"] + count(xreal), bad=s["bad"] + bad)
        return new, (exit_v, exit_m, exit_f, jnp.where(first, s["p"] // T, -1))

    return jax.lax.scan(cycle, carry, None, length=_WINDOW)


def _os_window(carry, xa, ra, xb, rb, p0, q0, n_folds, R, C, T):
    """OS with the drain overlapped: ``_WINDOW`` cycles from ``carry``.

    xa/ra: A rows p0.. (row p = fold p // T, reduction step p % T; lane i = tile row i);
    xb/rb: B rows p0.. (lane j = tile column j).  ``q0`` is unused (one feeder pointer).
    """
    del q0
    GR, GC = carry["acc"].shape
    ri, cj = jnp.arange(GR)[:, None], jnp.arange(GC)[None, :]
    exists = (ri < R) & (cj < C)

    def cycle(s, _):
        issue = (s["p"] < n_folds * T) & ((s["p"] % T != 0) | (s["since"] >= R))
        fa = _feed(xa, ra, s["p"] - p0, issue, R, s["p"] % T, s["p"] // T)
        fb = _feed(xb, rb, s["p"] - p0, issue, C, s["p"] % T, s["p"] // T)
        sa, (av, at, af, areal) = _delay(s["sa"], fa)
        sb, (bv, bt, bf, breal) = _delay(s["sb"], fb)
        a, at, af = shift_right(s["a"], av), shift_right(s["at"], at), shift_right(s["af"], af)
        b, bt, bf = shift_down(s["b"], bv), shift_down(s["bt"], bt), shift_down(s["bf"], bf)
        mac = (at >= 0) & (bt >= 0) & exists
        total = s["acc"] + jnp.where(mac, a * b, 0.0)
        last = mac & (at == T - 1)
        # drain: in each draining column the draining fold's sums move down a row; row R-1's leave
        dr = s["dr"][None, :]
        dm = (s["of"] >= 0) & (s["of"] == dr)
        above = shift_down(dm, jnp.zeros((GC,), bool))
        exit_v = jnp.where(row(dm, R - 1), row(s["ov"], R - 1), 0.0)
        exit_r = jnp.where(row(dm, R - 1), row(s["orow"], R - 1), -1)
        exit_f = jnp.where(row(dm, R - 1), row(s["of"], R - 1), -1)
        inside = ri < R

        def move(x, empty):
            kept = jnp.where(above, shift_down(x, jnp.full((GC,), empty, x.dtype)), jnp.where(dm, empty, x))
            return jnp.where(inside, kept, empty)

        ov, orow, of = move(s["ov"], 0.0), move(s["orow"], -1), move(s["of"], -1)
        clobber = count(above & ~dm & (s["of"] >= 0)) + count(last & (of >= 0))
        ov, orow, of = jnp.where(last, total, ov), jnp.where(last, ri, orow), jnp.where(last, af, of)
        still = jnp.any((of >= 0) & (of == dr), axis=0)
        bottom = row(of, R - 1)
        first = issue & (s["p"] % T == 0)
        new = dict(s, p=s["p"] + issue, since=jnp.where(first, 1, s["since"] + 1), sa=sa, sb=sb,
                   a=a, at=at, af=af, b=b, bt=bt, bf=bf, acc=jnp.where(last, 0.0, total),
                   ov=ov, orow=orow, of=of, dr=jnp.where(still, s["dr"], bottom),
                   nout=s["nout"] + count(exit_r >= 0), cycles=s["cycles"] + (s["nout"] < n_folds * R * C),
                   x_in=s["x_in"] + count(areal), y_in=s["y_in"] + count(breal),
                   bad=s["bad"] + clobber + count(mac & ((at != bt) | (af != bf))))
        return new, (exit_v, exit_r, exit_f, jnp.where(first, s["p"] // T, -1))

    return jax.lax.scan(cycle, carry, None, length=_WINDOW)


_WS_WINDOW = jax.jit(_ws_window)
_OS_WINDOW = jax.jit(_os_window)


def _scalars(**names):
    return {k: jnp.int32(v) for k, v in names.items()}


def _ws_carry(GR: int, GC: int) -> dict:
    z, none = jnp.zeros((GR, GC), jnp.float32), jnp.full((GR, GC), -1, jnp.int32)
    return dict(_scalars(p=0, q=0, latched0=0, nout=0, cycles=0, stat_in=0, x_in=0, bad=0),
                lq=_lines(GC), lc=z, lt=none, lf=none, w=jnp.stack([z, z]), wf=jnp.stack([none, none]),
                sq=_lines(GR), a=z, am=none, af=none, ps=z, pm=none, pf=none)


def _os_carry(GR: int, GC: int) -> dict:
    z, none = jnp.zeros((GR, GC), jnp.float32), jnp.full((GR, GC), -1, jnp.int32)
    return dict(_scalars(p=0, since=2**30, nout=0, cycles=0, x_in=0, y_in=0, bad=0),
                sa=_lines(GR), sb=_lines(GC), a=z, at=none, af=none, b=z, bt=none, bf=none, acc=z,
                ov=z, orow=none, of=none, dr=jnp.full((GC,), -1, jnp.int32))


def _window(buf: np.ndarray, start: int) -> np.ndarray:
    """Rows start .. start + _WINDOW of a feeder buffer, zero-padded past its end."""
    out = np.zeros((_WINDOW,) + buf.shape[1:], buf.dtype)
    part = buf[start:start + _WINDOW]
    out[:len(part)] = part
    return out


def _run(engine, carry: dict, buffers: list, pointers: tuple[str, str], n_folds: int, R: int, C: int,
         T: int, expected: int, limit: int):
    """Step windows until ``expected`` results have left the array (or ``limit`` cycles passed)."""
    outs, steps = [], 0
    while int(carry["nout"]) < expected and steps < limit:
        p0, q0 = (int(carry[name]) if name else 0 for name in pointers)
        wins = [_window(buf, q0 if use_q else p0) for buf, use_q in buffers]
        carry, out = engine(carry, *wins, np.int32(p0), np.int32(q0), np.int32(n_folds),
                            np.int32(R), np.int32(C), np.int32(T))
        outs.append(jax.device_get(out))
        steps += _WINDOW
    ev, et, ef, st = (np.concatenate([o[i] for o in outs]) for i in range(4))
    starts = np.full(n_folds, -1)
    cyc = np.nonzero(st >= 0)[0]
    starts[st[cyc]] = cyc
    return jax.device_get(carry), ev, et, ef, starts


def _intervals(starts: np.ndarray, cycles: int) -> tuple[int, ...]:
    """Cycles from each fold's first streamed row to the next fold's (the first from cycle 0, the
    last to the end): they add up to the total."""
    bounds = [0] + [int(s) for s in starts[1:]] + [cycles]
    return tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))


def stationary_stream(tiles: np.ndarray, tile_real: np.ndarray, lanes: np.ndarray, lane_real: np.ndarray,
                      R: int, C: int, T: int) -> dict:
    """Weight/input-stationary folds back to back with double-buffered stationary registers.

    tiles (F, GR, GC) stationary tiles (zero-padded), tile_real the same shape (real elements);
    lanes (F, T, GR) the unskewed stream of each fold (lane i feeds row i), lane_real its real flags.
    Returns sums (F, T, GC) as they left each column, the counts, and each fold's interval.
    """
    F, GR, GC = tiles.shape
    order = np.arange(R - 1, -1, -1)                           # bottom row first
    ws, wr = tiles[:, order].reshape(F * R, GC), tile_real[:, order].reshape(F * R, GC)
    xs, xr = lanes.reshape(F * T, GR), lane_real.reshape(F * T, GR)
    limit = F * (T + 2 * R + C + 2) + 2 * _WINDOW
    final, ev, et, ef, starts = _run(_WS_WINDOW, _ws_carry(GR, GC), [(xs, False), (xr, False), (ws, True), (wr, True)],
                                     ("p", "q"), F, R, C, T, F * T * C, limit)
    cycles = int(final["cycles"])
    return dict(sums=collect(ev, et, ef, F, T), exit_t=et, exit_f=ef, cycles=cycles,
                intervals=_intervals(starts, cycles), done=int(final["nout"]) == F * T * C,
                bad=int(final["bad"]), stat_in=int(final["stat_in"]), x_in=int(final["x_in"]))


def output_stream(a_lanes: np.ndarray, a_real: np.ndarray, b_lanes: np.ndarray, b_real: np.ndarray,
                  R: int, C: int, T: int) -> dict:
    """Output-stationary folds back to back with the accumulator drain overlapped.

    a_lanes (F, T, GR): fold f's A tile streamed (lane i = tile row i); b_lanes (F, T, GC): its B
    tile (lane j = tile column j); *_real their real flags.  Returns the tiles (F, GR, GC) as they
    left the bottom edge, the counts, and each fold's interval.
    """
    F, _, GR = a_lanes.shape
    GC = b_lanes.shape[2]
    bufs = [(x.reshape(F * T, -1), False) for x in (a_lanes, a_real, b_lanes, b_real)]
    limit = F * (max(T, R) + 2 * R + C + 2) + 2 * _WINDOW
    final, ev, et, ef, starts = _run(_OS_WINDOW, _os_carry(GR, GC), bufs, ("p", ""), F, R, C, T, F * R * C, limit)
    cycles = int(final["cycles"])
    return dict(tiles=collect(ev, et, ef, F, GR), exit_t=et, exit_f=ef, cycles=cycles,
                intervals=_intervals(starts, cycles), done=int(final["nout"]) == F * R * C,
                bad=int(final["bad"]), x_in=int(final["x_in"]), y_in=int(final["y_in"]))
