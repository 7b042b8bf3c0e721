"""Price a traced workload on a chip: bytes per level, FLOPs, cycles and time for every record.

Kernels are priced from what they executed (block copies, block products at their own dtypes);
matmuls left to XLA are priced at the roofline of their dtype; other XLA ops move their operands
once through main memory (an unfused upper bound) and their arithmetic is not modelled on the
matrix unit; collectives take the time of their ring algorithm on the chip's links
(``accelsim.cost.interconnect``). Every record becomes an ``OpCost``: a name and scope around a ``Cost`` value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from accelsim.chips.spec import Chip
from accelsim.cost.cache import level_bytes, main_bytes_on_chip
from accelsim.cost.compute import exp_cycles, step_cycles, step_operand_bytes, waves
from accelsim.cost.interconnect import collective_time
from accelsim.cost.result import Cost
from accelsim.cost.timing import overlap
from accelsim.ops import op_of_kernel
from accelsim.trace.collectives import Collective
from accelsim.trace.pallas import KernelRecord
from accelsim.trace.workload import WorkloadTrace, XlaMatmul, XlaOp


@dataclass(frozen=True)
class OpCost:
    """One record priced on one chip, already multiplied by how many times it ran."""

    name: str
    scope: str
    kind: str  # "kernel", "xla_matmul", "xla_op" or "collective"
    cost: Cost
    op: str = ""  # the registered op a kernel belongs to (accelsim.ops), "" for a user's own kernel or XLA

    def __getattr__(self, attribute: str):  # bytes_per_level, time_s, bound, ... read through to the cost
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.cost, attribute)


def price_kernel(record: KernelRecord, chip: Chip) -> OpCost:
    """Cost of a traced pallas_call: its copies at main memory, its block products on the matrix unit."""
    copies = record.main_bytes
    operand = sum(count * step_operand_bytes(chip, p.in_bytes, p.m, p.k, p.n) for p, count in record.dots.items())
    levels = level_bytes(chip, _main_bytes(record, chip), copies, operand)
    block_cycles = sum(count * step_cycles(chip, p.compute_dtype, p.m, p.k, p.n) for p, count in record.dots.items())
    parallel = record.parallel_blocks
    compute = waves(parallel, chip.matrix.count) * (block_cycles + exp_cycles(chip, record.exps)) / parallel
    steps = math.prod(record.grid)
    timing = overlap(chip, compute, levels, record.prologue_bytes, record.epilogue_bytes, grid_steps=steps,
                     operand_bytes=record.operand_bytes, parallel_blocks=parallel)
    cost = timing.cost(flops=record.flops, calls=1.0, exps=record.exps, grid_steps=float(steps))
    op = op_of_kernel(record.name)
    return OpCost(record.name, record.scope, "kernel", cost * record.weight, op.name if op else "")


def _main_bytes(record: KernelRecord, chip: Chip) -> float:
    """Main-memory bytes behind the chip's cache (cost/cache.py), kept on the traced kernel per chip (it
    lives as long as the trace): a decode loop re-prices the same kernels every step."""
    if not chip.cache_levels or not record.streams:
        return record.main_bytes
    key = (chip.name, chip.matrix.count, chip.cache_levels[0].total_capacity_bytes)
    if key not in record.priced:
        record.priced[key] = main_bytes_on_chip(chip, list(record.streams), list(record.counts))
    return record.priced[key]


def price_xla_matmul(record: XlaMatmul, chip: Chip) -> OpCost:
    """A dot_general left to XLA: the vendor library is assumed to tile it well, so it is priced at the
    roofline of its dtype, its compulsory bytes at main-memory bandwidth against its FLOPs at peak."""
    flops = record.flops
    compute = flops / chip.peak_flops(record.product.compute_dtype) * chip.clock_hz
    timing = overlap(chip, compute, {chip.main_memory.name: record.compulsory_bytes})
    return OpCost("dot_general", record.scope, "xla_matmul",
                  timing.cost(flops=flops, calls=1.0) * (record.batch * record.weight))


TRANSCENDENTAL = {"exp", "exp2", "log", "log1p", "tanh", "logistic", "erf", "sin", "cos", "pow", "expm1"}


def price_xla_op(record: XlaOp, chip: Chip) -> OpCost:
    """Elementwise, reduction and data-movement ops: their bytes at main-memory bandwidth, or, for
    transcendental ops, their results at the vector unit's rate if that takes longer."""
    cycles = record.bytes / chip.main_memory.bandwidth_bytes_per_s * chip.clock_hz
    vector = exp_cycles(chip, record.elements) if record.name in TRANSCENDENTAL else 0.0
    bound = "vector" if vector > cycles else chip.main_memory.name
    cycles = max(cycles, vector)
    cost = Cost.of(bound, cycles / chip.clock_hz, bytes_per_level={chip.main_memory.name: record.bytes},
                   compute_cycles=vector, total_cycles=cycles, calls=1.0)
    return OpCost(record.name, record.scope, "xla_op", cost * record.weight)


def price_collective(record: Collective, chip: Chip) -> OpCost:
    """A collective: the bytes each device sends over the chip's links, bound by the interconnect."""
    link = collective_time(record.algorithm, record.bytes, record.devices, chip)
    cost = Cost.of("interconnect", link.time_s, bytes_per_level={link.link: link.sent_bytes},
                   total_cycles=link.time_s * chip.clock_hz, calls=1.0)
    return OpCost(record.name, record.scope, "collective", cost * record.weight)


def price_workload(trace: WorkloadTrace, chip: Chip) -> list[OpCost]:
    """Every record of a traced workload, priced on ``chip``, in execution order per kind. Records a re-read
    trace shares with its first reading (``TracedWorkload``: all but the scalar-prefetch kernels) are priced
    once per chip."""
    def priced(record, price) -> OpCost:
        entry = trace.priced.get(id(record)) if id(record) in trace.shared else None
        if entry is None or entry[0] is not record:
            return price(record, chip)
        if id(chip) not in entry[1] or entry[1][id(chip)][0] is not chip:
            entry[1][id(chip)] = (chip, price(record, chip))
        return entry[1][id(chip)][1]

    return ([priced(k, price_kernel) for k in trace.kernels] + [priced(m, price_xla_matmul) for m in trace.matmuls]
            + [priced(o, price_xla_op) for o in trace.ops] + [priced(c, price_collective) for c in trace.collectives])


def total(costs: list[OpCost]) -> Cost:
    """The sum of priced records."""
    return sum((c.cost for c in costs), Cost())
