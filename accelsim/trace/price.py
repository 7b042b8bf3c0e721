"""Price a traced workload on a chip: bytes per level, FLOPs, cycles and time for every record.

Kernels are priced from what they executed (block copies, block products); matmuls left to XLA are
priced with the matmul plan for the chip; other XLA ops move their operands once through main memory
(an unfused upper bound) and their arithmetic is not modelled on the matrix unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from accelsim.chips.spec import Chip
from accelsim.cost.cache import wave_step_working_set, wave_unique_bytes
from accelsim.cost.compute import exp_cycles, step_cycles, step_operand_bytes, waves
from accelsim.cost.timing import overlap
from accelsim.trace.pallas import KernelRecord
from accelsim.trace.workload import WorkloadTrace, XlaMatmul, XlaOp

DTYPE_OF_BYTES = {4: "f32", 2: "bf16", 1: "int8"}


@dataclass
class OpCost:
    """One record priced on one chip, already multiplied by how many times it ran."""

    name: str
    scope: str
    kind: str  # "kernel", "xla_matmul" or "xla_op"
    bytes_per_level: dict[str, float]
    flops: float
    compute_cycles: float
    total_cycles: float
    time_s: float
    bound: str
    calls: float
    extra: dict[str, float] = field(default_factory=dict)


def price_kernel(record: KernelRecord, chip: Chip) -> OpCost:
    """Cost of a traced pallas_call: its copies at main memory, its block products on the matrix unit."""
    copies = record.main_bytes
    operand_bytes = sum(count * step_operand_bytes(chip, in_b, m, k, n) for (m, k, n, in_b), count in record.dots.items())
    bytes_per_level = {chip.main_memory.name: _main_bytes_behind_cache(record, chip)}
    for cache in chip.cache_levels:
        bytes_per_level[cache.name] = copies
    if len(chip.memory) > 1:
        bytes_per_level[chip.staging_memory.name] = copies + operand_bytes
    block_cycles = sum(count * step_cycles(chip, DTYPE_OF_BYTES[in_b], m, k, n) for (m, k, n, in_b), count in record.dots.items())
    parallel = record.parallel_blocks
    compute = waves(parallel, chip.matrix.count) * (block_cycles + exp_cycles(chip, record.exps)) / parallel
    prologue = sum(t.first_bytes for t in record.transfers if t.direction == "read")
    epilogue = sum(t.last_bytes for t in record.transfers if t.direction == "write")
    timing = overlap(chip, compute, bytes_per_level, prologue, epilogue, grid_steps=math.prod(record.grid),
                     operand_bytes=record.operand_bytes)
    return _scaled(OpCost(record.name, record.scope, "kernel", bytes_per_level, record.flops, timing.compute_cycles,
                          timing.total_cycles, timing.time_s, timing.bound, 1.0,
                          {"exp": record.exps, "grid_steps": float(math.prod(record.grid))}), record.weight)


def _main_bytes_behind_cache(record: KernelRecord, chip: Chip) -> float:
    """Every copy reaches main memory, unless a cache holds what a wave needs per step (see cost/cache.py).

    Kept on the traced kernel per chip (it lives as long as the trace): a decode loop re-prices the
    same matmul kernels every step."""
    if not chip.cache_levels or not record.transfers:
        return record.main_bytes
    key = ("main_bytes_behind_cache", chip.name, chip.matrix.count, chip.cache_levels[0].total_capacity_bytes)
    memo = record.transfers[0].priced
    if key not in memo:
        memo[key] = _cache_filtered(record, chip)
    return memo[key]


def _cache_filtered(record: KernelRecord, chip: Chip) -> float:
    units, reads = chip.matrix.count, [t for t in record.transfers if t.direction == "read"]
    working_set = sum(wave_step_working_set(t.indices, t.block_bytes, record.grid, units) for t in reads)
    if working_set > chip.cache_levels[0].total_capacity_bytes:
        return record.main_bytes
    misses = sum(wave_unique_bytes(t.indices, t.step_bytes, t.copied, record.grid, units) for t in reads)
    return misses + sum(t.bytes for t in record.transfers if t.direction == "write")


def price_xla_matmul(record: XlaMatmul, chip: Chip) -> OpCost:
    """A dot_general left to XLA: the vendor library is assumed to tile it well, so it is priced at the
    roofline, its compulsory bytes at main-memory bandwidth against its FLOPs at peak."""
    dtype = DTYPE_OF_BYTES[record.in_bytes]
    flops = 2.0 * record.m * record.k * record.n
    main = (record.m * record.k + record.k * record.n) * record.in_bytes + record.m * record.n * record.out_bytes
    compute = flops / chip.peak_flops(dtype) * chip.clock_hz
    timing = overlap(chip, compute, {chip.main_memory.name: main})
    op = OpCost("dot_general", record.scope, "xla_matmul", {chip.main_memory.name: main}, flops,
                timing.compute_cycles, timing.total_cycles, timing.time_s, timing.bound, 1.0)
    return _scaled(op, record.batch * record.weight)


TRANSCENDENTAL = {"exp", "exp2", "log", "log1p", "tanh", "logistic", "erf", "sin", "cos", "pow", "expm1"}


def price_xla_op(record: XlaOp, chip: Chip) -> OpCost:
    """Elementwise, reduction and data-movement ops: their bytes at main-memory bandwidth, or, for
    transcendental ops, their results at the vector unit's rate if that takes longer."""
    cycles = record.bytes / chip.main_memory.bandwidth_bytes_per_s * chip.clock_hz
    vector = exp_cycles(chip, record.elements) if record.name in TRANSCENDENTAL else 0.0
    bound = "vector" if vector > cycles else chip.main_memory.name
    cycles = max(cycles, vector)
    op = OpCost(record.name, record.scope, "xla_op", {chip.main_memory.name: record.bytes}, 0.0, vector, cycles,
                cycles / chip.clock_hz, bound, 1.0, {"elements": record.elements})
    return _scaled(op, record.weight)


def price_workload(trace: WorkloadTrace, chip: Chip) -> list[OpCost]:
    """Every record of a traced workload, priced on ``chip``, in execution order per kind."""
    return ([price_kernel(k, chip) for k in trace.kernels] + [price_xla_matmul(m, chip) for m in trace.matmuls]
            + [price_xla_op(o, chip) for o in trace.ops])


def _scaled(op: OpCost, factor: float) -> OpCost:
    if factor == 1.0:
        return op
    return OpCost(op.name, op.scope, op.kind, {k: v * factor for k, v in op.bytes_per_level.items()}, op.flops * factor,
                  op.compute_cycles * factor, op.total_cycles * factor, op.time_s * factor, op.bound, op.calls * factor,
                  {k: v * factor for k, v in op.extra.items()})
