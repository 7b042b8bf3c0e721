"""Collectives in a sharded jaxpr (``psum``, ``all_gather``, ``psum_scatter``, ``ppermute``, ``all_to_all``).

Inside a ``shard_map`` body shapes are per device, so a collective's record holds the bytes one
device contributes, in the operand's own dtype, and the number of devices along its mesh axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from accelsim.dtypes import array_itemsize
from accelsim.trace.grid_eval import NotStatic

# primitive -> the algorithm that prices it (accelsim.cost.interconnect)
ALGORITHM_OF = {"psum": "all_reduce", "psum_invariant": "all_reduce", "pmax": "all_reduce", "pmin": "all_reduce",
                "all_gather": "all_gather", "reduce_scatter": "reduce_scatter", "ppermute": "ppermute",
                "all_to_all": "all_to_all"}


@dataclass
class Collective:
    """One collective: ``bytes`` per device (the gathered result for all_gather, else the operand) over
    ``devices`` devices, run ``weight`` times."""

    name: str
    scope: str
    bytes: float
    devices: int
    weight: float = 1.0

    @property
    def algorithm(self) -> str:
        """The algorithm ``accelsim.cost.interconnect`` prices it by (``psum`` and ``pmax``: all_reduce)."""
        return ALGORITHM_OF[self.name]


def _axis_names(eqn) -> tuple:
    names = eqn.params.get("axes", eqn.params.get("axis_name"))
    return names if isinstance(names, tuple) else (names,)


def collective_record(eqn, scope: str, weight: float, axis_sizes: Mapping[str, int]) -> Collective:
    """The record of a collective eqn, its device count from the enclosing ``shard_map`` meshes' axes."""
    devices = 1
    for axis in _axis_names(eqn):
        if isinstance(axis, int):
            continue  # a positional axis: a reduction within each device
        if axis not in axis_sizes:
            raise NotStatic(f"collective over mesh axis '{axis}' outside a shard_map that names it")
        devices *= axis_sizes[axis]
    buffers = eqn.outvars if eqn.primitive.name == "all_gather" else eqn.invars
    nbytes = sum(float(np.prod(v.aval.shape)) * array_itemsize(v.aval.dtype) for v in buffers)
    return Collective(eqn.primitive.name, scope, nbytes, devices, weight)
