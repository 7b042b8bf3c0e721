"""Tables of plans: one row per chip."""

from __future__ import annotations

from accelsim.report.table import footnote, render, seconds, si
from accelsim.tiling.plan import Plan


def plans_table(plans: list[Plan], title: str = "") -> str:
    columns = [
        ("chip", lambda p: p.chip),
        ("blocks", lambda p: "x".join(str(v) for v in p.blocks.values())),
        ("bytes per level", lambda p: ", ".join(f"{k} {si(v, 'B')}" for k, v in p.bytes_per_level.items())),
        ("FLOPs", lambda p: si(p.flops)),
        ("cycles", lambda p: si(p.total_cycles)),
        ("time", lambda p: seconds(p.time_s)),
        ("bound", lambda p: p.bound),
        ("MFU", lambda p: f"{p.mfu:.0%}"),
        ("chips", lambda p: p.chips_needed),
    ]
    text = render(plans, columns, title)
    notes = sorted({f"{p.chip}: {n}" for p in plans for n in p.notes})
    return text + footnote("\n" + "\n".join(notes) if notes else "")
