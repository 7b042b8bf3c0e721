"""Plain-text tables with engineering units (or the same tables as CSV, under ``csv_tables()``), and JSON output."""

from __future__ import annotations

import contextlib
import contextvars
import csv
import io
import json
import math
from typing import Any, Callable, Iterator, Sequence

_AS_CSV = contextvars.ContextVar("accelsim_tables_as_csv", default=False)

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


@contextlib.contextmanager
def csv_tables(enabled: bool = True) -> Iterator[None]:
    """Within this block ``render`` writes CSV (a header row, then one row per row; no title): ``--csv``."""
    token = _AS_CSV.set(enabled)
    try:
        yield
    finally:
        _AS_CSV.reset(token)


def render(rows: Sequence[dict], columns: Sequence[Column], title: str = "") -> str:
    """Left-aligned text table; each column is (header, function of the row). CSV under ``csv_tables()``."""
    cells = [[h for h, _ in columns]] + [[str(fn(row)) for _, fn in columns] for row in rows]
    if _AS_CSV.get():
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(cells)
        return out.getvalue().rstrip("\n")
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return (title + "\n" if title else "") + "\n".join(lines)


def footnote(text: str) -> str:
    """``text`` to append below a table; nothing under ``csv_tables()``, where only the rows belong."""
    return "" if _AS_CSV.get() else text


def to_json(data: Any) -> str:
    """Valid JSON always: numpy values, tuples and ``to_dict`` objects made plain, NaN and infinities as null."""
    return json.dumps(plain(data), indent=2, allow_nan=False)


def plain(value: Any) -> Any:
    """``value`` with only JSON types inside; a non-finite float (no JSON spelling) becomes None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return plain(value.item())
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
