"""A chip as it runs under load: its peak figures replaced by the chip file's ``[sustained]`` ones.

``accelsim estimate --sustained`` prices on this view. Only the figures the file's ``[sustained]``
section gives change (achieved dense FLOP/s per dtype, achieved main-memory bandwidth); every other
figure, and every chip without the section, stays at its peak, and the result says which were used.
"""

from __future__ import annotations

import dataclasses

from accelsim.chips.spec import Chip


def sustained_figures(chip: Chip) -> list[str]:
    """Which of the chip's figures a sustained view replaces, e.g. ['bf16 FLOP/s', 'hbm bandwidth']."""
    found = chip.sustained
    if found is None:
        return []
    names = [f"{dtype} FLOP/s" for dtype in found.dense_flops]
    if found.main_bandwidth_bytes_per_s:
        names.append(f"{chip.main_memory.name} bandwidth")
    return names


def sustained_view(chip: Chip) -> Chip:
    """``chip`` with its ``[sustained]`` FLOP/s and main-memory bandwidth in place of the peaks (as is without)."""
    found = chip.sustained
    if found is None:
        return chip
    matrix = dataclasses.replace(chip.matrix, dense_flops={**chip.matrix.dense_flops, **found.dense_flops})
    memory = chip.memory
    if found.main_bandwidth_bytes_per_s:
        main = dataclasses.replace(chip.main_memory, bandwidth_bytes_per_s=found.main_bandwidth_bytes_per_s)
        memory = (main,) + chip.memory[1:]
    return dataclasses.replace(chip, matrix=matrix, memory=memory)
