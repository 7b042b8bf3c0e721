"""The `accelsim chips` table and one chip as JSON."""

from __future__ import annotations

from dataclasses import asdict

from accelsim.chips import Chip
from accelsim.report.table import footnote, render, si


def chip_rows(chips: list[Chip]) -> list[dict]:
    rows = []
    for chip in chips:
        dense = chip.matrix.dense_flops
        peak = dense.get("bf16") or max(dense.values())
        rows.append({
            "name": chip.name,
            "peak": peak,
            "peak_dtype": "bf16" if "bf16" in dense else max(dense, key=dense.get),
            "levels": [(m.name, m.total_capacity_bytes, m.bandwidth_bytes_per_s) for m in chip.memory],
            "ridge": peak / chip.main_memory.bandwidth_bytes_per_s,
            "array": f"{chip.matrix.kind} {chip.matrix.rows}x{chip.matrix.cols} x{chip.matrix.count}",
            "source": chip.matrix.source,
        })
    return rows


def chips_table(chips: list[Chip], with_sources: bool = True) -> str:
    """Peak dense bf16, every level's capacity and bandwidth, the ridge point, and where the figures come from."""
    rows = chip_rows(chips)
    columns = [
        ("chip", lambda r: r["name"]),
        ("dense FLOP/s", lambda r: si(r["peak"], "FLOP/s") + ("" if r["peak_dtype"] == "bf16" else f" ({r['peak_dtype']})")),
        ("memory levels (capacity @ bandwidth)",
         lambda r: "; ".join(f"{n} {si(c, 'B')} @ {si(b, 'B/s')}" for n, c, b in r["levels"])),
        ("ridge FLOP/B", lambda r: f"{r['ridge']:.0f}"),
        ("matrix units", lambda r: r["array"]),
    ]
    text = render(rows, columns)
    if with_sources:
        text += footnote("\n\nSources (per chip: matrix unit; each file lists one per figure):\n"
                         + "\n".join(f"  {c.name}: {c.matrix.source}" for c in chips))
    return text


def chip_json(chip: Chip) -> dict:
    out = asdict(chip)
    out["ridge_point_bf16"] = chip.ridge_point("bf16") if "bf16" in chip.matrix.dense_flops else None
    return out
