"""Chip specifications as frozen values: clock, matrix units, memory levels and links.

Every figure carries the source it was taken from; figures a vendor does not publish carry
an explicit ``assumption`` instead of pretending to be data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from accelsim.errors import AccelsimError

MATRIX_KINDS = ("systolic", "tensor_core", "vector")
ARCHITECTURES = ("gpu", "systolic", "sram", "cpu")
DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")


@dataclass(frozen=True)
class MemoryLevel:
    """One level of the memory hierarchy, outermost (largest) first in ``Chip.memory``.

    ``capacity_bytes`` is per instance (per SM, per core, per chip); ``instances`` copies exist
    on the chip. ``bandwidth_bytes_per_s`` is the aggregate over all instances.
    """

    name: str
    capacity_bytes: float
    bandwidth_bytes_per_s: float
    source: str
    instances: int = 1
    assumption: str = ""

    @property
    def total_capacity_bytes(self) -> float:
        return self.capacity_bytes * self.instances


@dataclass(frozen=True)
class MatrixUnit:
    """The chip's matrix engines: geometry and per-dtype peak FLOP/s (dense and sparse kept apart).

    ``rows`` x ``cols`` is one systolic array (or one tensor-core MMA tile shape ``m`` x ``n``);
    ``count`` is how many operate in parallel (arrays, or SMs for a GPU).
    """

    kind: str
    rows: int
    cols: int
    count: int
    dense_flops: Mapping[str, float]
    sparse_flops: Mapping[str, float]
    source: str
    dataflow: str = "weight_stationary"
    assumption: str = ""


@dataclass(frozen=True)
class Link:
    """Chip-to-chip interconnect: ``count`` links of ``bandwidth_bytes_per_s`` each, per direction."""

    name: str
    bandwidth_bytes_per_s: float
    count: int
    source: str
    latency_s: float = 0.0
    assumption: str = ""

    @property
    def total_bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_bytes_per_s * self.count


@dataclass(frozen=True)
class Chip:
    """One accelerator. ``memory[0]`` is the level the operands live in between kernels."""

    name: str
    vendor: str
    architecture: str
    clock_hz: float
    clock_source: str
    matrix: MatrixUnit
    memory: tuple[MemoryLevel, ...]
    links: tuple[Link, ...] = field(default_factory=tuple)
    description: str = ""
    origin: str = ""  # path of the file this chip was read from
    step_overhead_s: float = 0.0  # fixed cost of each kernel grid step after the first (bookkeeping, DMA issue)
    step_operand_bytes_per_s: float = 0.0  # >0: each step after the first also moves every operand array at this rate
    step_overhead_source: str = ""
    exp_per_s: float = 0.0  # >0: vector/special-function unit exponentials per second (softmax cost)
    exp_source: str = ""

    @property
    def main_memory(self) -> MemoryLevel:
        return self.memory[0]

    @property
    def staging_memory(self) -> MemoryLevel:
        """The innermost level, where kernel blocks are copied to (SMEM, VMEM, SBUF); SRAM itself on SRAM-only chips."""
        return self.memory[-1]

    @property
    def cache_levels(self) -> tuple[MemoryLevel, ...]:
        """Hardware-managed levels between main and staging memory (a GPU's L2): every block copy passes through them."""
        return self.memory[1:-1]

    @property
    def is_sram_only(self) -> bool:
        return self.architecture == "sram"

    def peak_flops(self, dtype: str, sparse: bool = False) -> float:
        table = self.matrix.sparse_flops if sparse else self.matrix.dense_flops
        if dtype not in table:
            kind = "sparse" if sparse else "dense"
            raise AccelsimError(
                f"chip '{self.name}' has no {kind} {dtype} FLOP/s figure (it has: {', '.join(table) or 'none'})"
            )
        return table[dtype]

    def ridge_point(self, dtype: str = "bf16") -> float:
        """FLOP per byte of main memory at which compute and bandwidth take equal time."""
        return self.peak_flops(dtype) / self.main_memory.bandwidth_bytes_per_s

    @property
    def interconnect_bytes_per_s(self) -> float:
        return sum(link.total_bandwidth_bytes_per_s for link in self.links)
