"""Latency of a kernel's operands and results crossing an on-chip mesh of cores (a chip file's ``[fabric]``).

On a wafer of small cores (Cerebras) a kernel spread over P cores holds its weights where they are and moves
the activations instead: its input vector is broadcast across the cores it occupies and its partial results are
reduced back across them. Both are messages forwarded core to core, so the kernel pays, besides its arithmetic,
the hops across its own region. With the P cores laid out as a square, one crossing is ceil(sqrt(P)) hops and a
kernel makes two (in, then out): the "pipeline all-reduce" WaferLLM describes as Cerebras's default costs 2N hops
on an N x N grid (He et al., "WaferLLM: Large Language Model Inference at Wafer Scale", OSDI 2025, section 3.1).

That is what makes a kernel's parallelism a trade-off here: more cores divide the arithmetic but lengthen the
crossing, and the plan search (tiling) picks the block count that balances them. This term is added to a
kernel's time, not overlapped: the first result cannot leave before the last operand has arrived.

Topologies are registered (``register_span``); a chip without ``[fabric]`` pays nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from accelsim.chips.spec import Chip

SPANS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def register_span(topology: str) -> Callable:
    """Register the hops one kernel's operands and results cross on ``topology``, as a function of its cores."""
    def add(rule: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        SPANS[topology] = rule
        return rule
    return add


@register_span("mesh")
def _mesh(cores: np.ndarray) -> np.ndarray:
    """Broadcast across a square region of the mesh, then reduce back across it: 2 * ceil(sqrt(cores))."""
    return 2.0 * np.ceil(np.sqrt(cores))


@register_span("torus2d")
def _torus(cores: np.ndarray) -> np.ndarray:
    """As on a mesh, with wrap-around links halving the farthest distance."""
    return np.ceil(np.sqrt(cores))


@register_span("none")
def _none(cores: np.ndarray) -> np.ndarray:
    return np.zeros_like(cores, dtype=np.float64)


def fabric_cycles(chip: "Chip", parallel_blocks):
    """Cycles a kernel whose ``parallel_blocks`` grid points run on different cores spends crossing the
    fabric: the topology's span over min(blocks, cores) cores times the chip's ``hop_cycles``. A kernel on
    one core crosses nothing. Accepts a number or a numpy array of block counts (the plan search's)."""
    if chip.fabric is None:
        return 0.0 if np.ndim(parallel_blocks) == 0 else np.zeros(np.shape(parallel_blocks))
    cores = np.minimum(np.asarray(parallel_blocks, dtype=np.float64), chip.matrix.count)
    hops = np.where(cores > 1, SPANS[chip.fabric.topology](np.maximum(cores, 1.0)), 0.0)
    cycles = hops * chip.fabric.hop_cycles
    return float(cycles) if np.ndim(cycles) == 0 else cycles
