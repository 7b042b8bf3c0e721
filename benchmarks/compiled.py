"""Compiled CPU path benchmark: our kernels run by the compiled executor vs Pallas interpret mode vs XLA.

Run: python -m benchmarks.compiled [--quick]
The same kernels, blocks and inputs three ways on this host, f32: under ``lowering_for("cpu")`` (the compiled
executor, ``kernels.grid_exec``: parallel grid axes batched with ``vmap``, the last axis a ``scan``),
``interpret=True`` (Pallas interpret mode) and XLA's own op. Sizes: the matmuls of benchmarks/matmul.py's
square sweep, and the flash prefill and decode sizes of benchmarks/attention.py, with the blocks the
tiling model picks for the calibrated ``host`` chip. Writes benchmarks/results/compiled-<backend>.json with
a top-level ``"ratios"`` object (per case, compiled / XLA time, timed in alternation) and
``"interpret_over_compiled"`` (per case, how much slower interpret mode is).
"""

from __future__ import annotations

import argparse
from typing import Callable

import jax
import jax.numpy as jnp

from accelsim.models.session import host_chip
from accelsim.report.table import render
from accelsim.tiling.matmul import plan_matmul
from benchmarks.attention import _xla_decode_step, _xla_prefill, decode_case, prefill_case
from benchmarks.common import median_time, side_by_side, write_results
from kernels.attention import flash_attention
from kernels.backend import lowering_for
from kernels.decode import decode_step
from kernels.matmul import matmul


def _row(case: str, blocks: dict, ours: Callable[[bool | None], object], xla: Callable[[], object],
         repeats: int) -> dict:
    """Times of ``ours(None)`` under ``lowering_for("cpu")`` (compiled), ``ours(True)`` (interpret) and
    ``xla()``; max |compiled - interpret|."""
    def run_compiled():
        with lowering_for("cpu"):
            return ours(None)

    compiled, interpreted = run_compiled(), ours(True)
    diff = max(float(jnp.max(jnp.abs(jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32))))
               for a, b in zip(jax.tree.leaves(compiled), jax.tree.leaves(interpreted)))
    compiled_s, xla_s = side_by_side(run_compiled, xla, repeats)
    times = {"compiled_s": compiled_s, "interpret_s": median_time(lambda: ours(True), repeats=repeats), "xla_s": xla_s}
    return {"case": case, "blocks": blocks, **times, "max_abs_diff_compiled_vs_interpret": diff}


def matmul_rows(sizes: list[int], host, repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        ka, kb = jax.random.split(jax.random.PRNGKey(n))
        a, b = jax.random.normal(ka, (n, n), jnp.float32), jax.random.normal(kb, (n, n), jnp.float32)
        blocks = plan_matmul(n, n, n, host, "f32").blocks
        dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
        rows.append(_row(f"matmul {n}x{n}x{n}", blocks, lambda i: matmul(a, b, **blocks, interpret=i),
                         lambda: dot(a, b), repeats))
    return rows


def prefill_rows(seqs: list[int], host, repeats: int) -> list[dict]:
    rows = []
    for s in seqs:
        q, k, v, blocks = prefill_case(s, host)
        qt, kt, vt = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
        rows.append(_row(f"prefill S={s}", blocks,
                         lambda i: flash_attention(q, k, v, causal=True, **blocks, interpret=i),
                         lambda: _xla_prefill(qt, kt, vt), repeats))
    return rows


def decode_rows(contexts: list[int], host, repeats: int) -> list[dict]:
    rows = []
    for ctx in contexts:
        q, k_new, v_new, cache, lengths, blocks = decode_case(ctx, host)
        kt, vt = cache.k.transpose(0, 2, 1, 3), cache.v.transpose(0, 2, 1, 3)
        rows.append(_row(f"decode ctx={ctx}", blocks,
                         lambda i: decode_step(q, k_new, v_new, cache, lengths, **blocks, interpret=i),
                         lambda: _xla_decode_step(q, k_new, v_new, kt, vt, lengths), repeats))
    return rows


def _ms(value: float) -> str:
    return f"{value * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args()
    sizes, seqs, contexts, repeats = ([512], [512], [2048], 3) if args.quick else (
        [512, 1024], [128, 512, 1024], [512, 2048, 8192], 5)
    host = host_chip(print)
    rows = matmul_rows(sizes, host, repeats) + prefill_rows(seqs, host, repeats) + decode_rows(contexts, host, repeats)
    for r in rows:
        r["interpret_over_compiled"] = r["interpret_s"] / r["compiled_s"]
        r["compiled_over_xla"] = r["compiled_s"] / r["xla_s"]
    print(render(rows, [
        ("case", lambda r: r["case"]), ("blocks", lambda r: "x".join(map(str, r["blocks"].values()))),
        ("compiled", lambda r: _ms(r["compiled_s"])), ("interpret", lambda r: _ms(r["interpret_s"])),
        ("xla", lambda r: _ms(r["xla_s"])), ("interpret/compiled", lambda r: f"{r['interpret_over_compiled']:.1f}x"),
        ("compiled/xla", lambda r: f"{r['compiled_over_xla']:.2f}x"),
        ("max |compiled-interpret|", lambda r: f"{r['max_abs_diff_compiled_vs_interpret']:.1e}"),
    ], title=f"compiled CPU path vs interpret mode vs XLA on {jax.default_backend()}, f32"))
    ratios = {r["case"]: r["compiled_over_xla"] for r in rows}
    slowdown = {r["case"]: r["interpret_over_compiled"] for r in rows}
    print(f"wrote {write_results('compiled', rows, ratios=ratios, interpret_over_compiled=slowdown)}")


if __name__ == "__main__":
    main()
