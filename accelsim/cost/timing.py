"""From per-level bytes and compute cycles to overlapped cycles, time, the bound, MFU and MBU."""

from __future__ import annotations

from dataclasses import dataclass, field

from accelsim.chips.spec import Chip
from accelsim.cost.fabric import fabric_cycles
from accelsim.cost.result import Cost


@dataclass(frozen=True)
class Timing:
    """Cycles per term and their double-buffered overlap on one chip."""

    compute_cycles: float
    memory_cycles: dict[str, float]
    interconnect_cycles: float
    prologue_cycles: float
    epilogue_cycles: float
    step_overhead_cycles: float
    total_cycles: float
    time_s: float
    bound: str
    bytes_per_level: dict[str, float] = field(default_factory=dict)
    fabric_cycles: float = 0.0

    def cost(self, **values: float) -> Cost:
        """This timing as a ``Cost`` (FLOPs, calls and other counts given by the caller)."""
        return Cost.of(self.bound, self.time_s, bytes_per_level=dict(self.bytes_per_level),
                       compute_cycles=self.compute_cycles, total_cycles=self.total_cycles, **values)


def memory_cycles(chip: Chip, bytes_per_level: dict[str, float]) -> dict[str, float]:
    """Cycles each level needs to move its bytes at its aggregate bandwidth."""
    levels = {level.name: level for level in chip.memory}
    return {name: b / levels[name].bandwidth_bytes_per_s * chip.clock_hz for name, b in bytes_per_level.items()}


def overlap(chip: Chip, compute_cycles: float, bytes_per_level: dict[str, float],
            prologue_bytes: float = 0.0, epilogue_bytes: float = 0.0, interconnect_bytes: float = 0.0,
            grid_steps: float = 0.0, operand_bytes: float = 0.0, parallel_blocks: float = 0.0) -> Timing:
    """Double buffering: each tile costs the larger of its compute and its transfers.

    With uniform tiles that sums to max(compute, every memory level) over the whole kernel, plus the
    first tile's load (prologue) and the last tile's store (epilogue), which nothing overlaps.
    Interconnect traffic (work split across chips) is added, not overlapped, and so is the chip's
    fixed per-grid-step overhead, if its file gives one; where the chip re-moves whole operands at
    every step (Pallas interpret mode on a CPU host), ``operand_bytes`` at its measured rate too. On a chip
    with a core mesh (``[fabric]``) the crossing of the ``parallel_blocks`` cores the kernel occupies is added
    as well (``accelsim.cost.fabric``).
    """
    per_level = memory_cycles(chip, bytes_per_level)
    main_bw = chip.main_memory.bandwidth_bytes_per_s / chip.clock_hz
    prologue, epilogue = prologue_bytes / main_bw, epilogue_bytes / main_bw
    link_bw = chip.interconnect_bytes_per_s
    link_cycles = interconnect_bytes / link_bw * chip.clock_hz if interconnect_bytes and link_bw else 0.0
    steady = max([compute_cycles, *per_level.values()])
    per_step = chip.step_overhead_s
    if chip.step_operand_bytes_per_s:
        per_step += operand_bytes / chip.step_operand_bytes_per_s
    step_cycles = max(grid_steps - 1, 0) * per_step * chip.clock_hz  # the first step is the kernel itself
    fabric = fabric_cycles(chip, parallel_blocks)
    total = prologue + steady + epilogue + link_cycles + step_cycles + fabric
    terms = {"compute": compute_cycles, **per_level}
    bound = max(terms, key=terms.get)
    extra = {"interconnect": link_cycles, "step overhead": step_cycles, "fabric": fabric}
    largest = max(extra, key=extra.get)
    if extra[largest] > steady:
        bound = largest
    return Timing(compute_cycles, per_level, link_cycles, prologue, epilogue, step_cycles, total,
                  total / chip.clock_hz, bound, dict(bytes_per_level), fabric)


def mfu(chip: Chip, dtype: str, flops: float, time_s: float) -> float:
    """Achieved FLOP/s over peak dense FLOP/s."""
    return flops / time_s / chip.peak_flops(dtype) if time_s > 0 else 0.0


def mbu(chip: Chip, main_bytes: float, time_s: float) -> float:
    """Achieved main-memory bytes/s over its peak bandwidth."""
    return main_bytes / time_s / chip.main_memory.bandwidth_bytes_per_s if time_s > 0 else 0.0


def in_sequence(chip: Chip, timings: list[Timing]) -> Timing:
    """Kernels that run one after another: their cycles add, and the bound is the largest summed term."""
    memory: dict[str, float] = {}
    levels: dict[str, float] = {}
    for t in timings:
        for name, value in t.memory_cycles.items():
            memory[name] = memory.get(name, 0.0) + value
        for name, value in t.bytes_per_level.items():
            levels[name] = levels.get(name, 0.0) + value
    compute = sum(t.compute_cycles for t in timings)
    fabric = sum(t.fabric_cycles for t in timings)
    terms = {"compute": compute, **memory, **({"fabric": fabric} if fabric else {})}
    total = sum(t.total_cycles for t in timings)
    return Timing(compute, memory, sum(t.interconnect_cycles for t in timings), timings[0].prologue_cycles,
                  timings[-1].epilogue_cycles, sum(t.step_overhead_cycles for t in timings), total,
                  total / chip.clock_hz, max(terms, key=terms.get), levels, fabric)
