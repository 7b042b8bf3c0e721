"""The grid, BlockSpecs and scratch of one kernel call: built once, used by the ``pallas_call`` and by the cost model.

The cost model derives a kernel's on-chip footprint from these objects (``accelsim.ops.footprint``),
so the blocks a plan is checked against are the blocks the kernel executes with.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class KernelSpecs(NamedTuple):
    """What ``pl.pallas_call`` takes for one kernel: ``grid``, ``in_specs``, ``out_specs`` (lists of
    ``pl.BlockSpec``), ``scratch_shapes`` and the ``(shape, dtype)`` of every input and output."""

    grid: tuple[int, ...]
    in_specs: list[Any]
    out_specs: list[Any]
    scratch_shapes: list[Any]
    in_arrays: list[tuple[tuple[int, ...], Any]]
    out_arrays: list[tuple[tuple[int, ...], Any]]
