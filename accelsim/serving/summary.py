"""What ``accelsim frontier`` reports from its sweeps, as plain rows: the frontier, a fixed speed, output lengths.

At a fixed per-user speed X the primary answer is a real configuration: the frontier point with the most
tok/s per chip among those at least X fast. Beside it, the frontier's tok/s per chip interpolated at exactly X
(log-log between its two neighbours), and its cost at the chosen point's price.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from accelsim.serving.economics import cost_per_million_tokens, per_chip, with_economics
from accelsim.serving.frontier import ChipSweep
from accelsim.serving.pareto import at_interactivity

AT_INTERACTIVITY_METHOD = ("best frontier point with tok/s per user >= X (a real configuration); "
                           "interpolated_* read off the frontier at exactly X, log-log between neighbours")


def interactivity_rows(sweeps: Sequence[ChipSweep], speed: float, prices: Mapping[str, float],
                       watts: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """One row per sweep at ``speed`` tok/s per user; ``point`` is None where no frontier point is that fast."""
    rows = []
    for sweep in sweeps:
        read = at_interactivity(sweep.frontier, speed)
        price = per_chip(read.point, prices) if read.point else None
        interpolated = read.interpolated_tokens_per_s_chip
        rows.append({"chip": sweep.chip, "tokens_per_s_user": speed,
                     "point": with_economics(read.point, prices, watts) if read.point else None,
                     "interpolated_tokens_per_s_chip": interpolated,
                     "interpolated_cost_per_mtok": (cost_per_million_tokens(price, interpolated)
                                                    if price is not None and interpolated else None)})
    return rows


def length_rows(runs: Sequence[tuple[int, Sequence[ChipSweep]]], prices: Mapping[str, float],
                watts: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """Per output length and sweep: the most concurrent requests that fit (fewest-chip split and any split)
    and the point of most tok/s per chip, with its cost per query where a price is given."""
    rows = []
    for osl, sweeps in runs:
        for sweep in sweeps:
            if not sweep.points:
                continue
            fewest = min(sweep.points, key=lambda p: p.chips).split
            best = max(sweep.points, key=lambda p: p.tokens_per_s_chip)
            rows.append({"chip": sweep.chip, "osl": osl, "fewest_chips_split": fewest,
                         "max_concurrency_fewest_chips": sweep.max_concurrency.get(fewest),
                         "max_concurrency_any_split": max(sweep.max_concurrency.values()),
                         "peak": with_economics(best, prices, watts)})
    return rows
