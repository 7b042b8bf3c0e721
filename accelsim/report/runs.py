"""Tables of model runs: one row per chip, and one chip's ops per layer."""

from __future__ import annotations

from accelsim.models.costing import PhaseCost, RunCost
from accelsim.report.table import footnote, render, seconds, si


def runs_table(runs: list[RunCost], title: str = "") -> str:
    """TTFT, TPOT, tokens/s per user and aggregate, chips and binding limit, per chip."""
    return render(runs, [
        ("chip", lambda r: r.chip),
        ("TTFT", lambda r: seconds(r.ttft_s)),
        ("TPOT", lambda r: seconds(r.tpot_s) if r.tpot_s else "-"),
        ("tok/s/user", lambda r: rate(r.tokens_per_s_user)),
        ("tok/s total", lambda r: rate(r.tokens_per_s_aggregate)),
        ("weights+KV", lambda r: si(r.capacity.weight_bytes + r.capacity.kv_bytes, "B")),
        ("chips", lambda r: f"{r.capacity.chips} ({r.capacity.split})" if r.capacity.chips > 1 else "1"),
        ("link/step", lambda r: seconds(r.interconnect_decode_s) if r.interconnect_decode_s else "-"),
        ("max batch", lambda r: f"{r.capacity.max_batch_at_context:,}"),
        ("binding limit", lambda r: r.binding_limit),
    ], title)


def rate(value: float) -> str:
    """Tokens per second: whole numbers from 100 up, three significant digits below (0.149, not 0)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def unpriced_table(rows: list[dict]) -> str:
    """Chips whose timing is past a modelling limit: what they hold and need, and why no times."""
    return render(rows, [
        ("chip", lambda r: r["chip"]),
        ("weights+KV", lambda r: si(r["capacity"]["weight_bytes"] + r["capacity"]["kv_bytes"], "B")),
        ("chips needed", lambda r: f"{r['capacity']['chips_needed']:,}"),
        ("split", lambda r: f"{r['capacity']['split']} (TP {r['capacity']['tensor_parallel']} x "
                            f"PP {r['capacity']['pipeline_stages']})"),
        ("max batch", lambda r: f"{r['capacity']['max_batch_at_context']:,}"),
        ("not priced", lambda r: r["reason"]),
    ], "capacity only (times not modelled)")


def ops_table(phase: PhaseCost, num_layers: int, title: str = "", top: int = 12) -> str:
    """The phase's ops, costliest first: per-layer ops show one layer's share, others the whole call."""
    rows = phase.ops[:top]
    def per(row, value):
        return value / num_layers if row.per_layer else value
    text = render(rows, [
        ("op", lambda r: r.name + (" (per layer)" if r.per_layer else "")),
        ("bytes per level", lambda r: ", ".join(f"{k} {si(per(r, v), 'B')}" for k, v in r.bytes_per_level.items())),
        ("FLOPs", lambda r: si(per(r, r.flops))),
        ("time", lambda r: seconds(per(r, r.time_s))),
        ("share", lambda r: f"{r.time_s / phase.time_s:.0%}" if phase.time_s else "-"),
        ("bound", lambda r: r.bound),
    ], title)
    if len(phase.ops) > top:
        rest = sum(r.time_s for r in phase.ops[top:])
        text += footnote(f"\n(+{len(phase.ops) - top} smaller ops, {rest / phase.time_s:.1%} of the time)"
                         if phase.time_s else "")
    return text
