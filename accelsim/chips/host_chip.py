"""The host chip's tables, CPU or GPU, built from this machine's measurements and what its OS reports.

Every ``source`` says where, when and how its figure was measured; figures taken from elsewhere (a GPU's
block rule, register file and MMA tile) say so in an ``assumption``.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import subprocess
from typing import Any, Callable

import jax

from accelsim.chips.loader import HOST_NAME
from accelsim.chips.measure import (COMPILED_MATMUL, COMPILED_STEPS, STEP_COUNT, STEP_OPERAND_MIB, GiB, MiB,
                                    MatmulResult, MeasurementPlan, measure_compiled_step_overhead, measure_exp_rate,
                                    measure_step_overhead, measure_triad)
from accelsim.chips.spec import Chip
from accelsim.chips.sysinfo import (cpu_count, cpuinfo_field, read_caches, read_clock_hz, read_memory_bytes,
                                    simd_f32_lanes)

Progress = Callable[[str], None]

# Not measurable from JAX: the Triton block rule, the register budget and the MMA tile of recent NVIDIA GPUs,
# the rule the presets give every GPU (before chip files carried it, code gave it to any 'gpu' chip).
_NOT_MEASURED = "not measured by accelsim calibrate: "
GPU_KERNEL_RULES: dict[str, Any] = {
    "block_rule": {
        "sublane": 16, "lane": 16, "power_of_two": True,
        "source": _NOT_MEASURED + "Triton, python/triton/language/semantic.py: tl.arange ranges must be powers of 2 "
                                  "and tl.dot operand dims at least 16; Pallas's Triton lowering inherits both",
    },
    "accumulator": {
        "capacity_bytes": 262144.0, "fraction": 0.5,
        "source": _NOT_MEASURED + "64K 32-bit registers (256 KB) per SM, the figure of NVIDIA's A100, H100 and B200 "
                                  "(CUDA C++ Programming Guide, technical specifications per compute capability)",
        "assumption": "This GPU is assumed to have NVIDIA's 256 KB register file per SM, at most half of it holding "
                      "the f32 accumulator block.",
    },
    "mma": {
        "m": 16, "n": 8, "k": 16,
        "source": _NOT_MEASURED + "CUDA PTX ISA, mma.sync.aligned.m16n8k16 for 16-bit operands (sm_80 and later)",
        "assumption": "The m16n8k16 tile common to recent NVIDIA GPUs, not read from the device.",
    },
}


def measured(where: str, method: str) -> str:
    return f"measured by accelsim calibrate on {where}: {method}"


def _matrix_method(flops: dict[str, MatmulResult]) -> str:
    parts = [f"{d} {r.flops_per_s / 1e9:,.1f} GFLOP/s at n={r.size} (tried {', '.join(map(str, r.sizes_tried))})"
             for d, r in flops.items()]
    repeats = next(iter(flops.values())).repeats
    return (f"jitted jnp.dot of square matrices through XLA, 2n^3 FLOPs, warm-up then the best of {repeats} "
            f"timed calls with block_until_ready, best size kept: {'; '.join(parts)}")


def cpu_chip(flops: dict[str, MatmulResult], plan: MeasurementPlan, where: str, say: Progress) -> dict[str, Any]:
    """The CPU host: main memory and last-level cache by triad, the clock and SIMD width from the OS, then the
    grid-step cost of our kernels as the host runs them (compiled, ``kernels.grid_exec``) and the exponential
    rate."""
    caches = read_caches()
    llc = max(caches, key=lambda c: c.level) if caches else None
    llc_bytes = llc.size_bytes if llc else 32 * MiB
    mem_bytes, mem_source = read_memory_bytes()
    stream_set = int(min(max(4 * llc_bytes, 64 * MiB), plan.stream_cap_bytes, mem_bytes // 4))
    say(f"  main-memory triad over {stream_set / MiB:,.0f} MiB")
    dram = measure_triad(stream_set, plan.stream_repeats)
    say(f"    {dram.bytes_per_s / 1e9:,.1f} GB/s")
    cache_set = max(256 * 1024, llc_bytes // 2)
    say(f"  cache triad over {cache_set / MiB:,.1f} MiB")
    cached = measure_triad(cache_set, plan.cache_repeats, fresh_output=False)
    say(f"    {cached.bytes_per_s / 1e9:,.1f} GB/s")

    hz, clock_source, clock_assumption = read_clock_hz()
    lanes, lanes_flag = simd_f32_lanes()
    cores = cpu_count()
    model = cpuinfo_field("model name") or platform.processor() or platform.machine()
    vendor_id = cpuinfo_field("vendor_id") or cpuinfo_field("CPU implementer") or ""
    vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "0x41": "Arm"}.get(vendor_id, vendor_id or "unknown")
    cache_text = ", ".join(f"L{c.level} {c.size_bytes // 1024:,} KiB x{c.instances}" for c in caches) or "unknown"
    trial = ("; the working set is capped by memory size and run time, so it may not exceed a large LLC"
             if stream_set < 4 * llc_bytes else "")

    memory = [{
        "name": "dram",
        "capacity_bytes": float(mem_bytes),
        "bandwidth_bytes_per_s": dram.bytes_per_s,
        "source": measured(where, f"capacity from {mem_source}; bandwidth = STREAM triad c = a + s*b on f32 "
                                  f"arrays totalling {dram.working_set_bytes / MiB:,.0f} MiB (3 arrays of traffic "
                                  f"per pass: read a, read b, write c), each pass into a fresh output buffer as XLA "
                                  f"ops do (first-touch page faults included), best of {dram.repeats} jitted passes"),
    }]
    if trial:
        memory[0]["assumption"] = f"Main-memory bandwidth is read off a working set of {stream_set / MiB:,.0f} MiB{trial}."
    if llc:
        memory.append({
            "name": f"l{llc.level}",
            "capacity_bytes": float(llc.size_bytes),
            "instances": llc.instances,
            "bandwidth_bytes_per_s": cached.bytes_per_s,
            "source": measured(where, f"last-level ({llc.kind.lower()}) cache size from "
                                      f"/sys/devices/system/cpu/cpu*/cache (per instance, {llc.instances} instance(s)); "
                                      f"bandwidth = the same triad over {cached.working_set_bytes / MiB:,.1f} MiB "
                                      f"(half the cache) written in place (a cache-resident set is not faulted in "
                                      f"again), best of {cached.repeats} passes, aggregate over all threads"),
        })
    else:
        memory.append({
            "name": "cache",
            "capacity_bytes": float(32 * MiB),
            "bandwidth_bytes_per_s": cached.bytes_per_s,
            "source": measured(where, f"bandwidth = triad over {cached.working_set_bytes / MiB:,.1f} MiB, "
                                      f"best of {cached.repeats} passes"),
            "assumption": "The OS reports no cache sizes; 32 MiB is a placeholder capacity.",
        })
    data = {
        "name": HOST_NAME,
        "vendor": vendor,
        "architecture": "cpu",
        "description": (f"{model}, {cores} CPUs, {mem_bytes / GiB:,.1f} GiB memory, caches {cache_text}; "
                        f"measured with jax {jax.__version__} on the {jax.default_backend()} backend"),
        "clock": {"hz": hz, "source": measured(where, f"read from {clock_source}"),
                  **({"assumption": clock_assumption} if clock_assumption else {})},
        "matrix": {
            "kind": "vector",
            "rows": 1,
            "cols": lanes,
            "count": 1,
            "source": measured(where, _matrix_method(flops) + f"; {lanes} f32 SIMD lanes from the '{lanes_flag}' "
                                      f"CPU flag; {cores} CPUs this process may run on"),
            "assumption": "The FLOP/s are what XLA's CPU matmul (Eigen/oneDNN) reaches on this machine with all "
                          f"{cores} CPUs, not a theoretical peak; bf16 may be converted to f32 inside the library. "
                          "count = 1: the compiled executor batches a kernel's parallel grid points into one XLA op "
                          "and runs its sequential steps one after another, each using every core, so the host is "
                          "one unit.",
            "dense_flops": {d: r.flops_per_s for d, r in flops.items()},
        },
        "memory": memory,
    }
    say("  grid-step cost of the compiled kernels")
    fixed = measure_compiled_step_overhead()
    say(f"    {fixed * 1e6:,.1f} us per extra grid step")
    say("  exponentials (the softmax's vector work)")
    exp_rate = measure_exp_rate()
    say(f"    {exp_rate / 1e9:,.2f} G exp/s")
    data["vector"] = {
        "exp_per_s": exp_rate,
        "source": measured(where, "jitted jnp.exp over a 1 MiB f32 array, 8 passes in a fori_loop, median of 3"),
    }
    data["pipeline"] = {
        "step_overhead_s": fixed,
        "source": measured(where, "a blocked f32 matmul kernel ({} x {} x {}, 2 x 2 output blocks) run by the "
                                  "compiled CPU executor (kernels.grid_exec): K in {} grid steps minus K in 1 step, "
                                  "the same bytes and FLOPs, over the {} extra grid points; median of 5".format(
                                      *COMPILED_MATMUL, COMPILED_STEPS, 4 * (COMPILED_STEPS - 1))),
        "assumption": "Our kernels run compiled on the host (kernels.grid_exec): every grid point after the first "
                      "costs this much beside its counted bytes and FLOPs (loop iterations, block staging, "
                      "accumulator updates), whatever the kernel. Pallas interpret mode (which re-moves whole "
                      "operands each step) is measured apart by `accelsim validate`.",
    }
    return data


def interpret_host(chip: Chip) -> Chip:
    """``chip`` (the calibrated CPU host) as it runs our kernels in Pallas interpret mode: each grid step's
    fixed cost and whole-operand moves measured now, in place of the compiled form's step cost."""
    fixed, rate = measure_step_overhead()
    return dataclasses.replace(
        chip, step_overhead_s=fixed, step_operand_bytes_per_s=rate,
        step_overhead_source=(f"measured by accelsim validate: an elementwise Pallas kernel in interpret mode, "
                              f"{STEP_COUNT} grid steps minus 1 over {STEP_COUNT - 1}, at {STEP_OPERAND_MIB[0]} and "
                              f"{STEP_OPERAND_MIB[1]} MiB operands, fitted as fixed + operand bytes / rate"))


def gpu_chip(device: Any, flops: dict[str, MatmulResult], plan: MeasurementPlan, where: str,
             say: Progress) -> dict[str, Any]:
    """The GPU host: device memory and L2 by triad, SMs from the device, the clock from nvidia-smi."""
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
    stream_set = int(min(plan.gpu_stream_cap_bytes, capacity // 4))
    say(f"  device-memory triad over {stream_set / MiB:,.0f} MiB")
    dram = measure_triad(stream_set, plan.stream_repeats * 3)
    say(f"    {dram.bytes_per_s / 1e9:,.1f} GB/s")
    probe = 4 * MiB
    say(f"  on-chip cache triad over {probe / MiB:,.0f} MiB")
    cached = measure_triad(probe, plan.cache_repeats * 3)
    say(f"    {cached.bytes_per_s / 1e9:,.1f} GB/s")
    units = int(getattr(device, "core_count", 0) or 1)
    hz, clock_source, clock_assumption = _gpu_clock(flops["bf16"].flops_per_s, units)
    return {
        "name": HOST_NAME,
        "vendor": (device.device_kind.split() or ["unknown"])[0],
        "architecture": "gpu",
        "description": f"{device.device_kind} ({units} SMs/CUs) measured with jax {jax.__version__} on the gpu backend",
        "clock": {"hz": hz, "source": measured(where, clock_source),
                  **({"assumption": clock_assumption} if clock_assumption else {})},
        "matrix": {
            "kind": "tensor_core",
            "rows": 16,
            "cols": 8,
            "count": units,
            "dataflow": "output_stationary",
            "source": measured(where, _matrix_method(flops) + "; count = device.core_count"),
            "assumption": "rows x cols is the m16n8 MMA tile common to recent GPUs, not read from the device; "
                          "the FLOP/s are XLA's achieved rates (f32 may run as TF32 under default precision).",
            "dense_flops": {d: r.flops_per_s for d, r in flops.items()},
        },
        "memory": [
            {"name": "hbm", "capacity_bytes": float(capacity), "bandwidth_bytes_per_s": dram.bytes_per_s,
             "source": measured(where, f"capacity from {capacity_source}; bandwidth = STREAM triad a = a + s*b over "
                                       f"{dram.working_set_bytes / MiB:,.0f} MiB, 3 arrays of traffic per pass, "
                                       f"best of {dram.repeats} passes")},
            {"name": "l2", "capacity_bytes": float(2 * probe), "bandwidth_bytes_per_s": cached.bytes_per_s,
             "source": measured(where, f"bandwidth = the same triad over {probe / MiB:,.0f} MiB, best of "
                                       f"{cached.repeats} passes"),
             "assumption": "JAX exposes no cache size; capacity is recorded as twice the probe's working set, "
                           "which fits the L2 of current data-centre GPUs."},
        ],
        **GPU_KERNEL_RULES,
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
