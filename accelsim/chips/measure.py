"""Timed measurements of the running machine through JAX, and how much work each may do.

Peak matmul FLOP/s (jitted square ``jnp.dot``, warm-up then the best of repeats, best size kept),
STREAM-triad bandwidth, exponentials per second, and the per-grid-step cost of our kernels as the host
runs them: compiled by XLA (``kernels.grid_exec``, the default) and in Pallas interpret mode.
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from accelsim.errors import AccelsimError

MiB = 1 << 20
GiB = 1 << 30
STEP_OPERAND_MIB = (4, 64)
STEP_COUNT = 16
COMPILED_MATMUL = (512, 2048, 512)
COMPILED_STEPS = 16


@dataclass(frozen=True)
class MatmulResult:
    flops_per_s: float
    size: int
    sizes_tried: tuple[int, ...]
    repeats: int


@dataclass(frozen=True)
class BandwidthResult:
    bytes_per_s: float
    working_set_bytes: int
    repeats: int


@dataclass(frozen=True)
class MeasurementPlan:
    """How much work each measurement may do (full run < 60 s, quick < 15 s on 2 cores)."""

    cpu_sizes: tuple[int, ...]
    gpu_sizes: tuple[int, ...]
    matmul_repeats: int
    matmul_budget_s: float
    stream_repeats: int
    cache_repeats: int
    stream_cap_bytes: int
    gpu_stream_cap_bytes: int


FULL = MeasurementPlan((1024, 2048, 4096), (2048, 4096, 8192, 16384), 5, 12.0, 7, 15, 2 * GiB, 2 * GiB)
QUICK = MeasurementPlan((256, 512, 1024), (1024, 2048, 4096), 3, 2.5, 3, 5, 512 * MiB, 512 * MiB)


def measure_exp_rate(repeats: int = 3) -> float:
    """Exponentials per second XLA:CPU computes on an array that stays in cache (8 passes over 1 MiB)."""
    x = jnp.linspace(-4.0, 4.0, 256 * 1024, dtype=jnp.float32)
    passes = 8
    fn = jax.jit(lambda a: jax.lax.fori_loop(0, passes, lambda i, y: jnp.exp(y * 1e-3), a))
    return passes * x.size / _median_time(fn, x, repeats)


def _median_time(fn, x, repeats: int = 5) -> float:
    """Median seconds of ``fn(x)`` (result blocked on) over ``repeats`` calls after one warm-up."""
    jax.block_until_ready(fn(x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_step_overhead() -> tuple[float, float]:
    """(fixed seconds, operand bytes per second) of each extra grid step of a Pallas kernel in interpret
    mode (``interpret=True``): interpret mode moves every operand array at every step, so the cost is
    fitted as fixed + (operand bytes) / rate from two operand sizes."""
    from jax.experimental import pallas as pl

    def per_step(mib: int) -> tuple[float, float]:
        rows = mib * MiB // (4 * 1024)
        x = jnp.ones((rows, 1024), jnp.float32)

        def timed(steps: int) -> float:
            block = rows // steps
            call = jax.jit(lambda a: pl.pallas_call(
                lambda a_ref, o_ref: o_ref.__setitem__(Ellipsis, a_ref[...] + 1.0), grid=(steps,),
                in_specs=[pl.BlockSpec((block, 1024), lambda i: (i, 0))],
                out_specs=pl.BlockSpec((block, 1024), lambda i: (i, 0)),
                out_shape=jax.ShapeDtypeStruct(a.shape, a.dtype), interpret=True)(a))
            return _median_time(call, x, repeats=3)

        return 2.0 * mib * MiB, max(0.0, (timed(STEP_COUNT) - timed(1)) / (STEP_COUNT - 1))

    (small_bytes, small), (large_bytes, large) = per_step(STEP_OPERAND_MIB[0]), per_step(STEP_OPERAND_MIB[1])
    if large <= small:
        return small, 0.0
    rate = (large_bytes - small_bytes) / (large - small)
    return max(0.0, small - small_bytes / rate), rate


def measure_compiled_step_overhead(repeats: int = 5) -> float:
    """Fixed seconds of each extra grid step of a kernel run by the compiled CPU executor (``kernels.grid_exec``,
    how the host runs our kernels by default): a blocked f32 matmul (``COMPILED_MATMUL`` M, K, N in (M/2, N/2)
    output blocks) with K in ``COMPILED_STEPS`` steps against K in one step, the same bytes and FLOPs, the
    difference spread over the extra grid points (the count pricing multiplies by)."""
    from jax.experimental import pallas as pl

    from kernels.grid_exec import grid_call  # calibration times the executor itself: it is what the host runs

    m, k, n = COMPILED_MATMUL
    a, b = jnp.full((m, k), 0.5, jnp.float32), jnp.full((k, n), 0.25, jnp.float32)

    def body(a_ref, b_ref, o_ref):
        @pl.when(pl.program_id(2) == 0)
        def _init():
            o_ref[...] = jnp.zeros_like(o_ref)

        o_ref[...] += jnp.dot(a_ref[...], b_ref[...], preferred_element_type=jnp.float32)

    def timed(steps: int) -> float:
        bm, bn, bk = m // 2, n // 2, k // steps
        call = jax.jit(grid_call(body, grid=(2, 2, steps),
                                 in_specs=[pl.BlockSpec((bm, bk), lambda i, j, s: (i, s)),
                                           pl.BlockSpec((bk, bn), lambda i, j, s: (s, j))],
                                 out_specs=pl.BlockSpec((bm, bn), lambda i, j, s: (i, j)),
                                 out_shape=jax.ShapeDtypeStruct((m, n), jnp.float32)))
        return _median_time(lambda xy: call(*xy), (a, b), repeats)

    return max(0.0, (timed(COMPILED_STEPS) - timed(1)) / (4 * (COMPILED_STEPS - 1)))


def measure_matmul(dtype: str, sizes: tuple[int, ...], repeats: int, budget_s: float) -> MatmulResult:
    """Best over ``sizes`` of the best-call FLOP/s of a jitted square ``jnp.dot``; larger sizes are skipped
    when their predicted time would overrun ``budget_s``."""
    jdtype = {"f32": jnp.float32, "bf16": jnp.bfloat16}[dtype]
    matmul = jax.jit(jnp.dot)
    deadline = time.perf_counter() + budget_s
    best: tuple[float, int] = (0.0, sizes[0])
    tried: list[int] = []
    last: tuple[int, float] | None = None
    for n in sizes:
        if last is not None:
            predicted = last[1] * (n / last[0]) ** 3 * (repeats + 2)
            if time.perf_counter() + predicted > deadline:
                break
        a = jnp.full((n, n), 0.5, jdtype).block_until_ready()
        b = jnp.full((n, n), 0.25, jdtype).block_until_ready()
        matmul(a, b).block_until_ready()  # compile and warm up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            matmul(a, b).block_until_ready()
            times.append(time.perf_counter() - t0)
            if time.perf_counter() > deadline and len(times) >= 2:
                break
        best_time = min(times)  # the best call: other load on a shared machine only ever slows a call down
        tried.append(n)
        last = (n, best_time)
        rate = 2.0 * n ** 3 / best_time
        if rate > best[0]:
            best = (rate, n)
        del a, b
    if best[0] <= 0:
        raise AccelsimError(f"calibrate: could not time a {dtype} matmul")
    return MatmulResult(best[0], best[1], tuple(tried), repeats)


def measure_triad(working_set_bytes: int, repeats: int, fresh_output: bool = True) -> BandwidthResult:
    """STREAM triad ``c = a + s * b`` on two f32 arrays totalling ``working_set_bytes``; counts 3 arrays of
    traffic per pass (read a, read b, write c) and keeps the best pass, as STREAM does.

    ``fresh_output``: each pass writes a new buffer, as every XLA op does, so where the OS faults new pages
    in slowly (as on this kind of VM) that cost is in the figure; used for main memory. Otherwise ``a`` is
    donated and overwritten in place: a cache-resident working set is not faulted in again."""
    n = max(1024, working_set_bytes // 8)
    triad = jax.jit(lambda a, b: a + jnp.float32(1.0000001) * b, donate_argnums=() if fresh_output else 0)
    a = jnp.full((n,), 1.0, jnp.float32).block_until_ready()
    b = jnp.full((n,), 0.5, jnp.float32).block_until_ready()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # backends without donation warn and copy instead
        a = triad(a, b).block_until_ready()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a = triad(a, b).block_until_ready()
            times.append(time.perf_counter() - t0)
    del a, b
    return BandwidthResult(3 * 4 * n / min(times), 8 * n, repeats)
