"""Field checks shared by every chip-file section: names, types, sources, plausible ranges and choices.

Every figure must be a finite number inside the physically plausible range of its kind (``LIMITS``);
every problem is one line naming the file (``where``) and the field.
"""

from __future__ import annotations

import math
from typing import Any

from accelsim.dtypes import canonical_dtype
from accelsim.errors import AccelsimError

# The plausible range (low, high) of each kind of figure; a figure outside it is rejected naming the range.
LIMITS: dict[str, tuple[float, float]] = {
    "clock": (1e6, 1e11),                # Hz: 1 MHz .. 100 GHz
    "bandwidth": (1e6, 1e17),            # B/s: 1 MB/s .. 100 PB/s (Cerebras WSE-3 SRAM is 21 PB/s)
    "optional_bandwidth": (0.0, 1e17),   # B/s, 0 = not modelled
    "flops": (1e6, 1e19),                # FLOP/s: 1 MFLOP/s .. 10 EFLOP/s
    "rate": (0.0, 1e19),                 # exponentials/s, 0 = not modelled
    "capacity": (1.0, 1e15),             # bytes: 1 B .. 1 PB
    "count": (1, 10_000_000),            # array rows/cols, units, instances, links, tile and block sizes
    "seconds": (0.0, 1.0),               # latencies and overheads: 0 .. 1 s
    "fraction": (1e-3, 1.0),             # a share: 0.1% .. 100%
    "watts": (1e-3, 1e6),                # W: 1 mW .. 1 MW (a Cerebras CS-3 system draws ~23 kW)
    "optional_clock": (0.0, 1e11),       # Hz, 0 = not published
    "cycles": (1e-3, 1e6),               # clock cycles per hop of an on-chip network
    "bytes_per_cycle": (1.0, 1e9),       # a datapath's width: bytes it moves per clock
}


def check_fields(raw: Any, schema: dict, required: tuple, where: str, prefix: str) -> None:
    """Reject a non-table, an unknown or missing field, a value of the wrong type, or an empty ``source``."""
    if not isinstance(raw, dict):
        raise AccelsimError(f"chip file {where}: '{prefix.rstrip('.') or 'top level'}' must be a table")
    for key in raw:
        if key not in schema:
            raise AccelsimError(f"chip file {where}: unknown field '{prefix}{key}'")
    for key in required:
        if key not in raw:
            raise AccelsimError(f"chip file {where}: missing field '{prefix}{key}'")
    for key, value in raw.items():
        want = schema[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if want in (int, float) else isinstance(value, want)
        if want is int and isinstance(value, float) and not value.is_integer():
            ok = False
        if not ok:
            raise AccelsimError(f"chip file {where}: field '{prefix}{key}' must be {want.__name__}, got {value!r}")
        if want is str and key == "source" and not value.strip():
            raise AccelsimError(f"chip file {where}: field '{prefix}{key}' is empty: every figure needs a source")


def figure(value: Any, where: str, field: str, kind: str) -> float:
    """``value`` as a float when it is a finite number inside ``LIMITS[kind]``, else a one-line error."""
    low, high = LIMITS[kind]
    if isinstance(value, float) and not math.isfinite(value):
        raise AccelsimError(f"chip file {where}: '{field}' must be a finite number (got {value})")
    if value <= 0 < low or value < 0:
        raise AccelsimError(f"chip file {where}: '{field}' must be {'positive' if low else 'non-negative'} "
                            f"(got {_show(value)})")
    if not low <= value <= high:
        raise AccelsimError(f"chip file {where}: '{field}' = {_show(value)} is outside the plausible range "
                            f"{low:g} to {high:g} (accelsim.chips.loader.LIMITS['{kind}'])")
    return float(value)


def flops_table(raw: dict, where: str, prefix: str) -> dict[str, float]:
    """A ``{dtype: FLOP/s}`` table with canonical dtype names, each figure in ``LIMITS['flops']``."""
    table = {}
    for dtype, value in raw.items():
        try:
            name = canonical_dtype(dtype)
        except AccelsimError:
            raise AccelsimError(f"chip file {where}: unknown field '{prefix}.{dtype}'") from None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise AccelsimError(f"chip file {where}: field '{prefix}.{dtype}' must be float, got {value!r}")
        table[name] = figure(value, where, f"{prefix}.{dtype}", "flops")
    return table


def _show(value: Any) -> str:
    """A number short enough for a one-line message (a 400-digit integer is shown as its magnitude)."""
    try:
        return f"{value:.6g}"
    except OverflowError:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"


def choice(value: str, allowed: tuple, where: str, field: str) -> str:
    """``value`` when it is one of ``allowed``, else a one-line error listing the allowed values."""
    if value not in allowed:
        raise AccelsimError(f"chip file {where}: '{field}' must be one of {', '.join(allowed)} (got '{value}')")
    return value
