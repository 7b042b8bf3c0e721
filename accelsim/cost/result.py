"""``Cost``: what some work costs on one chip, as a value that adds (ops into a phase) and scales (calls).

Modelled on ``jax.experimental.roofline.RooflineResult``: frozen, with ``+`` and ``*``, so summing
per-op costs into phases and runs needs no hand-written loops. The binding limit of a sum is the
term that accounts for the most time (``time_by_bound``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping


def _merge(a: Mapping[str, float], b: Mapping[str, float], scale_b: float = 1.0) -> dict[str, float]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0.0) + value * scale_b
    return out


@dataclass(frozen=True)
class Cost:
    """Bytes per memory level, FLOPs, cycles and time of some work on one chip, over ``calls`` calls."""

    bytes_per_level: Mapping[str, float] = field(default_factory=dict)
    flops: float = 0.0
    compute_cycles: float = 0.0
    total_cycles: float = 0.0
    time_s: float = 0.0
    calls: float = 0.0
    exps: float = 0.0
    grid_steps: float = 0.0
    time_by_bound: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, bound: str, time_s: float, **values) -> "Cost":
        """One piece of work bound by ``bound`` for all of its ``time_s``."""
        return cls(time_s=time_s, time_by_bound={bound: time_s}, **values)

    @property
    def bound(self) -> str:
        """The term (compute, a memory level, interconnect, ...) that accounts for the most time."""
        if not self.time_by_bound:
            return "none"
        return max(self.time_by_bound, key=self.time_by_bound.get)

    def __add__(self, other: "Cost") -> "Cost":
        if isinstance(other, int) and other == 0:  # sum() starts from 0
            return self
        if not isinstance(other, Cost):
            return NotImplemented
        values = {name: getattr(self, name) + getattr(other, name) for name in _NUMBERS}
        values.update({name: _merge(getattr(self, name), getattr(other, name)) for name in _TABLES})
        return Cost(**values)

    __radd__ = __add__

    def __mul__(self, factor: float) -> "Cost":
        values = {name: getattr(self, name) * factor for name in _NUMBERS}
        values.update({name: {k: v * factor for k, v in getattr(self, name).items()} for name in _TABLES})
        return Cost(**values)

    __rmul__ = __mul__

    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in _NUMBERS + _TABLES}
        out["bytes_per_level"] = dict(self.bytes_per_level)
        out["time_by_bound"] = dict(self.time_by_bound)
        out["bound"] = self.bound
        return out


# which fields add as numbers and which as per-key tables, decided once (checking each value is slow)
_TABLES = tuple(f.name for f in fields(Cost) if f.name in ("bytes_per_level", "time_by_bound"))
_NUMBERS = tuple(f.name for f in fields(Cost) if f.name not in _TABLES)
