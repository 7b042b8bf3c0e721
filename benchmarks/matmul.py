"""Matmul benchmark: our tiled kernel vs jnp.dot on this host, and tiling-model plans per second.

Run: python -m benchmarks.matmul [--sizes 256 512 ...] [--dtype f32]
Ratios are measured side by side in one run (timed in alternation); a single absolute time means little on a
shared machine. The JSON's top-level ``"ratios"`` maps each size to ours / jnp.dot time (lower is better).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from accelsim.chips import load_chip, preset_names
from accelsim.report.table import render
from accelsim.tiling import plan_matmul
from benchmarks.common import kernels_as, side_by_side, write_results
from kernels.matmul import matmul


def host_blocks(n: int, dtype: str) -> dict[str, int]:
    """Blocks the tiling model picks for the calibrated host, or for the CPU-like default when not calibrated."""
    try:
        chip = load_chip("host")
    except Exception:  # noqa: BLE001 - not calibrated: fall back to a fixed sensible block
        return {"bm": min(n, 512), "bn": min(n, 512), "bk": min(n, 512)}
    return plan_matmul(n, n, n, chip, dtype).blocks


def kernel_vs_xla(sizes: list[int], dtype: str, repeats: int = 5) -> list[dict]:
    rows = []
    for n in sizes:
        key_a, key_b = jax.random.split(jax.random.PRNGKey(n))
        jdt = jnp.float32 if dtype == "f32" else jnp.bfloat16
        a, b = jax.random.normal(key_a, (n, n), jdt), jax.random.normal(key_b, (n, n), jdt)
        blocks = host_blocks(n, dtype)
        xla_dot = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32).astype(jdt))
        ours, xla = side_by_side(lambda: matmul(a, b, **blocks), lambda: xla_dot(a, b), repeats)
        rows.append({"n": n, "dtype": dtype, "blocks": blocks, "ours_s": ours, "jnp_dot_s": xla,
                     "ratio": ours / xla, "ours_gflops": 2 * n**3 / ours / 1e9, "jnp_gflops": 2 * n**3 / xla / 1e9})
    return rows


def plans_per_second(seconds: float = 3.0) -> dict:
    chips = [load_chip(n) for n in preset_names() if n != "host"]
    shapes = [(m, k, n) for m in (1, 128, 4096) for k in (512, 4096) for n in (1000, 8192)]
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for chip in chips:
            for shape in shapes:
                plan_matmul(*shape, chip, "bf16")
                count += 1
    elapsed = time.perf_counter() - start
    return {"plans": count, "seconds": elapsed, "plans_per_second": count / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    parser.add_argument("--interpret", action="store_true", help="run our kernel in Pallas interpret mode")
    args = parser.parse_args()
    with kernels_as(args.interpret):
        rows = kernel_vs_xla(args.sizes, args.dtype)
    print(render(rows, [
        ("n", lambda r: r["n"]), ("blocks", lambda r: "x".join(map(str, r["blocks"].values()))),
        ("ours", lambda r: f"{r['ours_s'] * 1e3:.2f} ms"), ("jnp.dot", lambda r: f"{r['jnp_dot_s'] * 1e3:.2f} ms"),
        ("ours/jnp.dot", lambda r: f"{r['ratio']:.2f}x"), ("ours GFLOP/s", lambda r: f"{r['ours_gflops']:.1f}"),
        ("jnp GFLOP/s", lambda r: f"{r['jnp_gflops']:.1f}"),
    ], title=(f"matmul {args.dtype} on {jax.default_backend()}: our Pallas kernel "
              f"({'interpret mode' if args.interpret else 'compiled'}) vs XLA's dot")))
    rate = plans_per_second()
    print(f"\ntiling model: {rate['plans_per_second']:.0f} plans/s ({rate['plans']} plans over 11 chips)")
    ratios = {f"matmul {r['n']}x{r['n']}x{r['n']} {r['dtype']}": r["ratio"] for r in rows}
    path = write_results("matmul", rows, ratios=ratios, plans=rate, form="interpret" if args.interpret else "compiled")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
