"""Plain-text tables with engineering units, and JSON output."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

_PREFIXES = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """1.23e12 -> '1.23 T' + unit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def seconds(value: float) -> str:
    """A duration with a readable unit."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


Column = tuple[str, Callable[[dict], Any]]


def render(rows: Sequence[dict], columns: Sequence[Column], title: str = "") -> str:
    """Left-aligned text table; each column is (header, function of the row)."""
    cells = [[h for h, _ in columns]] + [[str(fn(row)) for _, fn in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return (title + "\n" if title else "") + "\n".join(lines)


def to_json(data: Any) -> str:
    """JSON with numpy scalars and tuples made plain."""
    return json.dumps(data, indent=2, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
