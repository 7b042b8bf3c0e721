"""Measure the running machine and write it as the ``host`` chip.

``calibrate()`` times jitted matmuls through XLA (f32 and bf16, a few square sizes, warm-up then the
median of repeats, best size kept) for peak FLOP/s, runs a STREAM-style triad ``a = a + s * b`` over a
working set several times the last-level cache (main-memory bandwidth) and over half of it (cache
bandwidth), and reads cache sizes, memory size and clock from the OS. The result is written in the
ordinary chip-file schema to ``accelsim.chips.loader.host_cache_path()`` and checked by loading it back.
Every ``source`` says where, when and how its figure was measured.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import time
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp

from accelsim.chips.loader import HOST_NAME, chip_from_dict, host_cache_path
from accelsim.errors import AccelsimError

Progress = Callable[[str], None]

_MiB = 1 << 20
_GiB = 1 << 30
_SYS_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class CacheLevel:
    """One data (or unified) cache level as the OS reports it."""

    level: int
    size_bytes: int
    instances: int  # distinct copies across the CPUs this process may use
    kind: str  # "Data" or "Unified"


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
class _Plan:
    """How much work each measurement may do (full run < 60 s, quick < 15 s on 2 cores)."""

    cpu_sizes: tuple[int, ...]
    gpu_sizes: tuple[int, ...]
    matmul_repeats: int
    matmul_budget_s: float
    stream_repeats: int
    cache_repeats: int
    stream_cap_bytes: int


_FULL = _Plan((1024, 2048, 4096), (2048, 4096, 8192, 16384), 5, 12.0, 7, 15, 2 * _GiB)
_QUICK = _Plan((256, 512, 1024), (1024, 2048, 4096), 3, 2.5, 3, 5, 512 * _MiB)


def calibrate(progress: Progress | None = None, quick: bool = False) -> Path:
    """Measure this machine, write the ``host`` chip file, and return its path."""
    say = progress or (lambda message: None)
    plan = _QUICK if quick else _FULL
    started = time.perf_counter()
    where = f"{socket.gethostname()} at {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    backend = jax.default_backend()
    device = jax.devices()[0]
    on_gpu = backend == "gpu"
    say(f"calibrating {HOST_NAME} on {backend} ({device.device_kind}){' [quick]' if quick else ''}")

    sizes = plan.gpu_sizes if on_gpu else plan.cpu_sizes
    flops = {}
    for dtype in ("f32", "bf16"):
        say(f"  {dtype} matmul: sizes {', '.join(map(str, sizes))}")
        flops[dtype] = measure_matmul(dtype, sizes, plan.matmul_repeats, plan.matmul_budget_s)
        say(f"    {flops[dtype].flops_per_s / 1e9:,.1f} GFLOP/s at n={flops[dtype].size}")

    if on_gpu:
        data = _gpu_chip(device, flops, plan, where, say)
    else:
        data = _cpu_chip(flops, plan, where, say)
        say("  Pallas interpret-mode grid-step overhead")
        fixed, rate = measure_step_overhead()
        say(f"    {fixed * 1e6:,.0f} us + operand bytes at {rate / 1e9:,.1f} GB/s per extra grid step")
        say("  exponentials (the softmax's vector work)")
        exp_rate = measure_exp_rate()
        say(f"    {exp_rate / 1e9:,.2f} G exp/s")
        data["vector"] = {
            "exp_per_s": exp_rate,
            "source": _measured(where, "jitted jnp.exp over a 1 MiB f32 array, 8 passes in a fori_loop, median of 3"),
        }
        data["pipeline"] = {
            "step_overhead_s": fixed,
            "step_operand_bytes_per_s": rate,
            "source": _measured(where, f"an elementwise Pallas kernel in interpret mode, {_STEP_COUNT} grid steps "
                                       f"minus 1 grid step over {_STEP_COUNT - 1}, at {_STEP_OPERAND_MIB[0]} and "
                                       f"{_STEP_OPERAND_MIB[1]} MiB operands, fitted as fixed + bytes / rate; "
                                       "median of 3"),
            "assumption": "Interpret mode (how the host runs our kernels) moves every operand array at each grid "
                          "step; a TPU or GPU does not, and their files leave this out.",
        }
    data["description"] += f"; calibration took {time.perf_counter() - started:.1f} s"

    path = host_cache_path()
    text = to_toml(data)
    chip_from_dict(tomllib.loads(text), where=str(path))  # refuse to write a file the loader rejects
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    say(f"wrote {path} in {time.perf_counter() - started:.1f} s")
    return path


# ----------------------------------------------------------------------------------------------- measurements

_STEP_OPERAND_MIB = (4, 64)
_STEP_COUNT = 16


def measure_exp_rate(repeats: int = 3) -> float:
    """Exponentials per second XLA:CPU computes on an array that stays in cache (8 passes over 1 MiB)."""
    x = jnp.linspace(-4.0, 4.0, 256 * 1024, dtype=jnp.float32)
    passes = 8
    fn = jax.jit(lambda a: jax.lax.fori_loop(0, passes, lambda i, y: jnp.exp(y * 1e-3), a))
    jax.block_until_ready(fn(x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - t0)
    return passes * x.size / statistics.median(times)


def measure_step_overhead() -> tuple[float, float]:
    """(fixed seconds, operand bytes per second) of each extra grid step of a Pallas kernel in interpret
    mode, which is how the host executes our kernels: interpret mode moves every operand array at every
    step, so the cost is fitted as fixed + (operand bytes) / rate from two operand sizes."""
    from jax.experimental import pallas as pl

    def per_step(mib: int) -> tuple[float, float]:
        rows = mib * _MiB // (4 * 1024)
        x = jnp.ones((rows, 1024), jnp.float32)

        def timed(steps: int) -> float:
            block = rows // steps
            call = jax.jit(lambda a: pl.pallas_call(
                lambda a_ref, o_ref: o_ref.__setitem__(Ellipsis, a_ref[...] + 1.0), grid=(steps,),
                in_specs=[pl.BlockSpec((block, 1024), lambda i: (i, 0))],
                out_specs=pl.BlockSpec((block, 1024), lambda i: (i, 0)),
                out_shape=jax.ShapeDtypeStruct(a.shape, a.dtype), interpret=True)(a))
            jax.block_until_ready(call(x))
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                jax.block_until_ready(call(x))
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        return 2.0 * mib * _MiB, max(0.0, (timed(_STEP_COUNT) - timed(1)) / (_STEP_COUNT - 1))

    (small_bytes, small), (large_bytes, large) = per_step(_STEP_OPERAND_MIB[0]), per_step(_STEP_OPERAND_MIB[1])
    if large <= small:
        return small, 0.0
    rate = (large_bytes - small_bytes) / (large - small)
    return max(0.0, small - small_bytes / rate), rate


def measure_matmul(dtype: str, sizes: tuple[int, ...], repeats: int, budget_s: float) -> MatmulResult:
    """Best over ``sizes`` of the median FLOP/s of a jitted square ``jnp.dot``; larger sizes are skipped
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
        median = statistics.median(times)
        tried.append(n)
        last = (n, median)
        rate = 2.0 * n ** 3 / median
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


# ----------------------------------------------------------------------------------------------- the OS


def read_caches() -> list[CacheLevel]:
    """Data and unified caches from sysfs, one entry per level, counting distinct instances."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = list(range(os.cpu_count() or 1))
    found: dict[int, dict[str, Any]] = {}
    for cpu in cpus:
        for index in sorted((_SYS_CPU / f"cpu{cpu}" / "cache").glob("index*")):
            try:
                kind = (index / "type").read_text().strip()
                if kind not in ("Data", "Unified"):
                    continue
                level = int((index / "level").read_text())
                size = _parse_size((index / "size").read_text())
                shared = (index / "shared_cpu_list").read_text().strip()
            except (OSError, ValueError):
                continue
            entry = found.setdefault(level, {"size": size, "kind": kind, "groups": set()})
            entry["groups"].add(shared)
    caches = [CacheLevel(level, e["size"], len(e["groups"]), e["kind"]) for level, e in sorted(found.items())]
    if caches:
        return caches
    for level, name in ((1, "SC_LEVEL1_DCACHE_SIZE"), (2, "SC_LEVEL2_CACHE_SIZE"), (3, "SC_LEVEL3_CACHE_SIZE")):
        try:
            size = os.sysconf(name)
        except (ValueError, OSError, AttributeError):
            continue
        if size and size > 0:
            caches.append(CacheLevel(level, int(size), 1, "Unified" if level > 1 else "Data"))
    return caches


def read_memory_bytes() -> tuple[int, str]:
    """Installed memory and where the number came from."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024, "/proc/meminfo MemTotal"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "sysconf(SC_PAGE_SIZE x SC_PHYS_PAGES)"
    except (ValueError, OSError, AttributeError):
        raise AccelsimError("calibrate: cannot read the installed memory size from this OS") from None


def read_clock_hz() -> tuple[float, str, str]:
    """(hz, source, assumption) for the CPU clock: the cpufreq maximum, else /proc/cpuinfo, else a placeholder."""
    max_freq = _SYS_CPU / "cpu0" / "cpufreq" / "cpuinfo_max_freq"
    try:
        return int(max_freq.read_text()) * 1e3, f"{max_freq} (maximum frequency)", ""
    except (OSError, ValueError):
        pass
    mhz = _cpuinfo_field("cpu MHz")
    if mhz:
        try:
            return float(mhz) * 1e6, "/proc/cpuinfo 'cpu MHz' of the first CPU", (
                "cpufreq is not exposed (typical of VMs); 'cpu MHz' is the current, not the maximum, frequency.")
        except ValueError:
            pass
    return 1e9, "placeholder", "This OS exposes no CPU clock; 1 GHz is a placeholder so that cycles can be counted."


def simd_f32_lanes() -> tuple[int, str]:
    """f32 lanes of the widest vector unit the CPU advertises, and the flag that says so."""
    flags = set((_cpuinfo_field("flags") or _cpuinfo_field("Features") or "").split())
    for flag, lanes in (("avx512f", 16), ("avx2", 8), ("avx", 8), ("asimd", 4), ("neon", 4), ("sse2", 4)):
        if flag in flags:
            return lanes, flag
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return 4, "aarch64 (NEON is mandatory)"
    return 1, "no SIMD flag found"


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def _parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"unreadable cache size {text!r}")
    return int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------- chip tables


def _measured(where: str, method: str) -> str:
    return f"measured by accelsim calibrate on {where}: {method}"


def _matrix_method(flops: dict[str, MatmulResult]) -> str:
    parts = [f"{d} {r.flops_per_s / 1e9:,.1f} GFLOP/s at n={r.size} (tried {', '.join(map(str, r.sizes_tried))})"
             for d, r in flops.items()]
    repeats = next(iter(flops.values())).repeats
    return (f"jitted jnp.dot of square matrices through XLA, 2n^3 FLOPs, warm-up then the median of {repeats} "
            f"timed calls with block_until_ready, best size kept: {'; '.join(parts)}")


def _cpu_chip(flops: dict[str, MatmulResult], plan: _Plan, where: str, say: Progress) -> dict[str, Any]:
    caches = read_caches()
    llc = max(caches, key=lambda c: c.level) if caches else None
    llc_bytes = llc.size_bytes if llc else 32 * _MiB
    mem_bytes, mem_source = read_memory_bytes()
    stream_set = int(min(max(4 * llc_bytes, 64 * _MiB), plan.stream_cap_bytes, mem_bytes // 4))
    say(f"  main-memory triad over {stream_set / _MiB:,.0f} MiB")
    dram = measure_triad(stream_set, plan.stream_repeats)
    say(f"    {dram.bytes_per_s / 1e9:,.1f} GB/s")
    cache_set = max(256 * 1024, llc_bytes // 2)
    say(f"  cache triad over {cache_set / _MiB:,.1f} MiB")
    cached = measure_triad(cache_set, plan.cache_repeats, fresh_output=False)
    say(f"    {cached.bytes_per_s / 1e9:,.1f} GB/s")

    hz, clock_source, clock_assumption = read_clock_hz()
    lanes, lanes_flag = simd_f32_lanes()
    cores = _cpu_count()
    model = _cpuinfo_field("model name") or platform.processor() or platform.machine()
    vendor_id = _cpuinfo_field("vendor_id") or _cpuinfo_field("CPU implementer") or ""
    vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "0x41": "Arm"}.get(vendor_id, vendor_id or "unknown")
    cache_text = ", ".join(f"L{c.level} {c.size_bytes // 1024:,} KiB x{c.instances}" for c in caches) or "unknown"
    trial = ("; the working set is capped by memory size and run time, so it may not exceed a large LLC"
             if stream_set < 4 * llc_bytes else "")

    memory = [{
        "name": "dram",
        "capacity_bytes": float(mem_bytes),
        "bandwidth_bytes_per_s": dram.bytes_per_s,
        "source": _measured(where, f"capacity from {mem_source}; bandwidth = STREAM triad c = a + s*b on f32 "
                                   f"arrays totalling {dram.working_set_bytes / _MiB:,.0f} MiB (3 arrays of traffic "
                                   f"per pass: read a, read b, write c), each pass into a fresh output buffer as XLA "
                                   f"ops do (first-touch page faults included), best of {dram.repeats} jitted passes"),
    }]
    if trial:
        memory[0]["assumption"] = f"Main-memory bandwidth is read off a working set of {stream_set / _MiB:,.0f} MiB{trial}."
    if llc:
        memory.append({
            "name": f"l{llc.level}",
            "capacity_bytes": float(llc.size_bytes),
            "instances": llc.instances,
            "bandwidth_bytes_per_s": cached.bytes_per_s,
            "source": _measured(where, f"last-level ({llc.kind.lower()}) cache size from "
                                       f"/sys/devices/system/cpu/cpu*/cache (per instance, {llc.instances} instance(s)); "
                                       f"bandwidth = the same triad over {cached.working_set_bytes / _MiB:,.1f} MiB "
                                       f"(half the cache) written in place (a cache-resident set is not faulted in "
                                       f"again), best of {cached.repeats} passes, aggregate over all threads"),
        })
    else:
        memory.append({
            "name": "cache",
            "capacity_bytes": float(32 * _MiB),
            "bandwidth_bytes_per_s": cached.bytes_per_s,
            "source": _measured(where, f"bandwidth = triad over {cached.working_set_bytes / _MiB:,.1f} MiB, "
                                       f"best of {cached.repeats} passes"),
            "assumption": "The OS reports no cache sizes; 32 MiB is a placeholder capacity.",
        })
    return {
        "name": HOST_NAME,
        "vendor": vendor,
        "architecture": "cpu",
        "description": (f"{model}, {cores} CPUs, {mem_bytes / _GiB:,.1f} GiB memory, caches {cache_text}; "
                        f"measured with jax {jax.__version__} on the {jax.default_backend()} backend"),
        "clock": {"hz": hz, "source": _measured(where, f"read from {clock_source}"),
                  **({"assumption": clock_assumption} if clock_assumption else {})},
        "matrix": {
            "kind": "vector",
            "rows": 1,
            "cols": lanes,
            "count": 1,
            "source": _measured(where, _matrix_method(flops) + f"; {lanes} f32 SIMD lanes from the '{lanes_flag}' "
                                       f"CPU flag; {cores} CPUs this process may run on"),
            "assumption": "The FLOP/s are what XLA's CPU matmul (Eigen/oneDNN) reaches on this machine with all "
                          f"{cores} CPUs, not a theoretical peak; bf16 may be converted to f32 inside the library. "
                          "count = 1: Pallas interpret mode runs grid steps one after another, each step's dot "
                          "using every core, so the host is one unit.",
            "dense_flops": {d: r.flops_per_s for d, r in flops.items()},
        },
        "memory": memory,
    }


def _gpu_chip(device: Any, flops: dict[str, MatmulResult], plan: _Plan, where: str, say: Progress) -> dict[str, Any]:
    stats = {}
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - memory_stats is optional on every backend
        stats = {}
    capacity = stats.get("bytes_limit")
    capacity_source = "device.memory_stats()['bytes_limit'] (the memory XLA may allocate)"
    if not capacity:
        capacity, capacity_source = read_memory_bytes()
        capacity_source += " (host memory: the device reported none)"
    stream_set = int(min(2 * _GiB if plan is _FULL else 512 * _MiB, capacity // 4))
    say(f"  device-memory triad over {stream_set / _MiB:,.0f} MiB")
    dram = measure_triad(stream_set, plan.stream_repeats * 3)
    say(f"    {dram.bytes_per_s / 1e9:,.1f} GB/s")
    probe = 4 * _MiB
    say(f"  on-chip cache triad over {probe / _MiB:,.0f} MiB")
    cached = measure_triad(probe, plan.cache_repeats * 3)
    say(f"    {cached.bytes_per_s / 1e9:,.1f} GB/s")
    units = int(getattr(device, "core_count", 0) or 1)
    hz, clock_source, clock_assumption = _gpu_clock(flops["bf16"].flops_per_s, units)
    return {
        "name": HOST_NAME,
        "vendor": (device.device_kind.split() or ["unknown"])[0],
        "architecture": "gpu",
        "description": f"{device.device_kind} ({units} SMs/CUs) measured with jax {jax.__version__} on the gpu backend",
        "clock": {"hz": hz, "source": _measured(where, clock_source),
                  **({"assumption": clock_assumption} if clock_assumption else {})},
        "matrix": {
            "kind": "tensor_core",
            "rows": 16,
            "cols": 8,
            "count": units,
            "dataflow": "output_stationary",
            "source": _measured(where, _matrix_method(flops) + "; count = device.core_count"),
            "assumption": "rows x cols is the m16n8 MMA tile common to recent GPUs, not read from the device; "
                          "the FLOP/s are XLA's achieved rates (f32 may run as TF32 under default precision).",
            "dense_flops": {d: r.flops_per_s for d, r in flops.items()},
        },
        "memory": [
            {"name": "hbm", "capacity_bytes": float(capacity), "bandwidth_bytes_per_s": dram.bytes_per_s,
             "source": _measured(where, f"capacity from {capacity_source}; bandwidth = STREAM triad a = a + s*b over "
                                        f"{dram.working_set_bytes / _MiB:,.0f} MiB, 3 arrays of traffic per pass, "
                                        f"best of {dram.repeats} passes")},
            {"name": "l2", "capacity_bytes": float(2 * probe), "bandwidth_bytes_per_s": cached.bytes_per_s,
             "source": _measured(where, f"bandwidth = the same triad over {probe / _MiB:,.0f} MiB, best of "
                                        f"{cached.repeats} passes"),
             "assumption": "JAX exposes no cache size; capacity is recorded as twice the probe's working set, "
                           "which fits the L2 of current data-centre GPUs."},
        ],
    }


def _gpu_clock(bf16_flops: float, units: int) -> tuple[float, str, str]:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.split()
            if out and float(out[0]) > 0:
                return float(out[0]) * 1e6, "nvidia-smi --query-gpu=clocks.max.sm", ""
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    hz = bf16_flops / (units * 4096)
    return hz, "derived from the measured bf16 FLOP/s", (
        "No clock is readable; assumed 4,096 dense bf16 FLOP/clk per SM (Hopper's rate), so clock = FLOP/s / "
        "(SMs x 4096). This is an effective figure, not a frequency.")


# ----------------------------------------------------------------------------------------------- TOML


def to_toml(data: dict[str, Any]) -> str:
    """Serialise a chip dict in the loader's schema (top-level scalars, [clock], [matrix] with its two
    dtype tables, then [[memory]] and [[link]] arrays)."""
    lines = [f"# The '{HOST_NAME}' chip, written by accelsim.chips.calibrate. Re-run `accelsim calibrate` to refresh."]
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))]
    for table in ("clock", "matrix", "pipeline", "vector"):
        if table not in data:
            continue
        lines += ["", f"[{table}]"]
        subtables = {k: v for k, v in data[table].items() if isinstance(v, dict)}
        lines += [f"{k} = {_toml_value(v)}" for k, v in data[table].items() if not isinstance(v, dict)]
        for name, sub in subtables.items():
            lines += ["", f"[{table}.{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in sub.items()]
    for array in ("memory", "link"):
        for item in data.get(array, []):
            lines += ["", f"[[{array}]]"] + [f"{k} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AccelsimError(f"calibrate: refusing to write a non-finite figure ({value})")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
