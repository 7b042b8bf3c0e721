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
POWER_SCOPES = ("chip", "system_per_chip")
TOPOLOGIES = ("switch", "torus2d", "torus3d", "mesh", "dragonfly", "none")


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
class Accumulator:
    """Where a matrix unit's f32 partial sums live when not in the staging memory, per unit.

    A GPU SM's register file, Trainium's PSUM. ``capacity_bytes`` is that store's size per unit
    (per SM, per NeuronCore); ``fraction`` is the share a kernel's accumulator block may fill
    (registers also hold operands and addresses). Partial sums written there do not cross the
    staging memory.
    """

    capacity_bytes: float
    fraction: float
    source: str
    assumption: str = ""

    @property
    def budget_bytes(self) -> int:
        return int(self.capacity_bytes * self.fraction)


@dataclass(frozen=True)
class BlockRule:
    """The kernel compiler's block-shape rule for the chip's family.

    A block's minor (last) dim must be a multiple of ``lane`` and its second-minor dim a multiple
    of ``sublane``, unless the block spans the whole array dim; with ``power_of_two`` only powers
    of two at least that large are legal (Triton). ``accumulator``, if set, holds the f32
    accumulator block outside the staging memory, up to ``register_accumulator_bytes``.
    """

    sublane: int
    lane: int
    power_of_two: bool
    source: str
    assumption: str = ""
    accumulator: Accumulator | None = None

    @property
    def register_accumulator_bytes(self) -> int:
        """>0: the accumulator block lives in registers (or PSUM), up to this many bytes; 0: in staging memory."""
        return self.accumulator.budget_bytes if self.accumulator else 0


DEFAULT_BLOCK_RULE = BlockRule(8, 8, False,
                               "no [block_rule] in the chip file: blocks are multiples of 8 (or the whole dim)")


@dataclass(frozen=True)
class MmaTile:
    """One tensor-core instruction's tile: an (m, k) x (k, n) product, for 16-bit operands.

    ``n`` is the step of the instruction's N where N is selectable (Hopper's wgmma: 8 to 256 in
    steps of 8); a block product is padded up to whole tiles.
    """

    m: int
    n: int
    k: int
    source: str
    assumption: str = ""


@dataclass(frozen=True)
class SystolicOverlap:
    """What a systolic array overlaps between folds (priced by ``accelsim.cost.compute.step_cycles``).

    ``stationary_double_buffered``: the next fold's stationary tile loads while the current one
    computes. ``drain_overlaps``: an output-stationary fold's drain overlaps the next fold's streaming.
    ``load_bytes_per_cycle``: how many bytes of a stationary tile one array takes in per clock while it
    is double-buffered; 0 = one row of the tile per clock (the emulator's load chain, TPU v1's "256
    cycles it takes to shift a tile in").
    """

    stationary_double_buffered: bool
    drain_overlaps: bool
    source: str
    assumption: str = ""
    load_bytes_per_cycle: float = 0.0


@dataclass(frozen=True)
class Power:
    """The chip's power draw in watts.

    ``scope`` "chip": the chip's (or accelerator module's) rated TDP; "system_per_chip": a published
    system's power divided by the chips in it (a GroqNode, a Cerebras CS-3), cooling and hosts included
    as far as the vendor's figure includes them.
    """

    watts: float
    scope: str
    source: str
    assumption: str = ""


@dataclass(frozen=True)
class ScaleUp:
    """The largest group of chips that tensor parallelism can span at full link bandwidth.

    An NVLink/NVSwitch domain, a TPU pod slice on its torus, a Trainium2 server. ``chips`` is the group's
    size, ``topology`` how it is wired (one of ``TOPOLOGIES``). ``hop_latency_s`` is one chip-to-chip hop's
    latency; ``link_bandwidth_bytes_per_s`` each chip's bandwidth into the domain per direction
    (0: use the chip's ``[[link]]`` total, ``Chip.interconnect_bytes_per_s``).
    """

    chips: int
    topology: str
    source: str
    assumption: str = ""
    hop_latency_s: float = 0.0
    link_bandwidth_bytes_per_s: float = 0.0


@dataclass(frozen=True)
class Sustained:
    """Achieved (not peak) figures from a public microbenchmark or vendor measurement.

    ``dense_flops``: achieved large-GEMM FLOP/s per dtype; ``main_bandwidth_bytes_per_s``: achieved
    main-memory copy or stream bandwidth (0: none published); ``clock_hz``: the clock under load (0: none
    published). Peak figures stay in ``Chip.matrix`` and ``Chip.memory``.
    """

    source: str
    assumption: str = ""
    dense_flops: Mapping[str, float] = field(default_factory=dict)
    main_bandwidth_bytes_per_s: float = 0.0
    clock_hz: float = 0.0


@dataclass(frozen=True)
class Fabric:
    """The on-chip network between cores (Cerebras's 2D mesh of processing elements).

    ``hop_cycles`` is the latency of one core-to-core hop in clock cycles; ``topology`` one of ``TOPOLOGIES``.
    """

    topology: str
    hop_cycles: float
    source: str
    assumption: str = ""


NO_SYSTOLIC_OVERLAP = SystolicOverlap(False, False, "no [systolic] in the chip file: folds overlap nothing")
NO_LAUNCH_SOURCE = "no [launch] in the chip file: no per-kernel launch overhead"


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
    block_rule: BlockRule = DEFAULT_BLOCK_RULE
    mma: MmaTile | None = None  # tensor-core chips only
    systolic: SystolicOverlap = NO_SYSTOLIC_OVERLAP
    launch_overhead_s: float = 0.0  # fixed cost of each kernel launch (priced where a phase is not one CUDA graph)
    launch_source: str = NO_LAUNCH_SOURCE
    device_names: tuple[str, ...] = ()  # jax device_kind substrings that identify this chip as the running accelerator
    power: Power | None = None  # rated or published power (energy per token in accelsim frontier)
    scale_up: ScaleUp | None = None  # the tensor-parallel domain: its size, topology and hop latency
    sustained: Sustained | None = None  # achieved figures beside the peaks (estimate --sustained)
    fabric: Fabric | None = None  # on-chip core-to-core network (accelsim.cost.fabric)

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
    def accumulator(self) -> Accumulator | None:
        """Where partial sums live outside the staging memory (registers, PSUM); None: in staging memory."""
        return self.block_rule.accumulator

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
