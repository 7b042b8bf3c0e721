"""``Plan``: one op on one chip — the blocks a kernel executes with and the closed-form cost of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Plan:
    """Block shapes, grid and closed-form counts of one op on one chip.

    ``blocks`` are the kernel's block sizes (keyword arguments of the kernel). ``bytes_per_level``
    maps each memory level's name to the bytes read from plus written to it. ``flops`` are the
    useful FLOPs (2*M*N*K for a matmul); ``executed_flops`` include the padding of edge blocks.
    """

    op: str
    chip: str
    dtype: str
    shape: dict[str, int]
    blocks: dict[str, int]
    grid: tuple[int, ...]
    bytes_per_level: dict[str, float]
    compulsory_bytes: float
    flops: float
    executed_flops: float
    compute_cycles: float
    memory_cycles: dict[str, float]
    total_cycles: float
    time_s: float
    bound: str
    mfu: float
    mbu: float
    chips_needed: int = 1
    interconnect_s: float = 0.0
    other_ops: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def main_bytes(self) -> float:
        return next(iter(self.bytes_per_level.values()))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["grid"] = list(self.grid)
        out["notes"] = list(self.notes)
        return out


class ChipMemo:
    """Results remembered per chip and hashable arguments. A ``Chip`` holds dicts, so it is keyed by
    identity, and held while its entries stand so that its id cannot be reused by another chip."""

    every: list["ChipMemo"] = []

    def __init__(self, limit: int = 1 << 14) -> None:
        self._values: dict[tuple, Any] = {}
        self._chips: dict[int, Any] = {}
        self._limit = limit
        ChipMemo.every.append(self)

    def clear(self) -> None:
        self._values.clear()
        self._chips.clear()

    @classmethod
    def forget_all(cls) -> None:
        """Empty every memo (a benchmark's cold start)."""
        for memo in cls.every:
            memo.clear()

    def get(self, chip: Any, key: tuple, compute: Callable[[], Any]) -> Any:
        full = (id(chip),) + key
        if full not in self._values:
            if len(self._values) >= self._limit:
                self.clear()
            self._chips[id(chip)] = chip
            self._values[full] = compute()
        return self._values[full]
