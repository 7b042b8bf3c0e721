"""Splitting one matmul over several chips when its operands exceed one chip's main memory."""

from __future__ import annotations

import math
from dataclasses import dataclass

from accelsim.chips.spec import Chip
from accelsim.dtypes import dtype_bytes
from accelsim.errors import AccelsimError


@dataclass(frozen=True)
class Shard:
    """One chip's share of a matmul too large for one chip: rows ``m`` of A and columns ``n`` of B,
    ``chips`` = row groups x column groups, and the bytes of A each chip receives over the links."""

    m: int
    n: int
    chips: int
    row_groups: int
    link_bytes: float

    def notes(self, chip: Chip) -> tuple[str, ...]:
        if self.chips == 1:
            return ()
        rows = f"M split {self.row_groups} ways, " if self.row_groups > 1 else ""
        link = chip.links[0].name if chip.links else "no modelled link"
        return (f"operands exceed one chip's {chip.main_memory.name}: {rows}N split over "
                f"{self.chips // self.row_groups} chips, A all-gathered over {link}",)


def shard_over_chips(m: int, k: int, n: int, chip: Chip, dtype: str, out_dtype: str, b_dtype: str | None = None) -> Shard:
    """Chips needed when A, B and C exceed one chip's main memory: N is split with A replicated; when A
    alone does not fit a chip, its rows are split first, into groups whose share fills half a chip."""
    in_b, out_b, b_b = dtype_bytes(dtype), dtype_bytes(out_dtype), dtype_bytes(b_dtype or dtype)
    capacity = chip.main_memory.total_capacity_bytes
    if m * k * in_b + k * n * b_b + m * n * out_b <= capacity:
        return Shard(m, n, 1, 1, 0.0)
    if not chip.links:
        raise AccelsimError(f"{chip.name} needs several chips for a {m}x{k}x{n} matmul but its file lists no "
                            "chip-to-chip link")
    row_groups = 1 if m * k * in_b < capacity else math.ceil(m * k * in_b / (capacity / 2))
    rows = math.ceil(m / row_groups)
    replicated = rows * k * in_b
    split = k * n * b_b + rows * n * out_b
    columns = max(1, math.ceil(split / (capacity - replicated)))
    return Shard(rows, math.ceil(n / columns), row_groups * columns, row_groups,
                 replicated * (columns - 1) / columns)
