"""The serving frontier as a PNG in the InferenceMAX style: x = tok/s per user, y = tok/s per chip, one curve per chip.

Every evaluated point is a faint dot; each chip's Pareto frontier is a line through its points, labelled with
the split and concurrency at its ends. Both axes are logarithmic when the values span more than a decade.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from accelsim.serving.frontier import ChipSweep  # noqa: E402


def _log_if_wide(values: Sequence[float]) -> str:
    positive = [v for v in values if v > 0]
    return "log" if positive and max(positive) > 10 * min(positive) else "linear"


def _plain(value: float, _position: int) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _plain_minor(value: float, _position: int) -> str:
    """Minor ticks labelled at 2x and 5x a power of ten only, so a narrow log axis still reads in numbers."""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6) if value > 0 else 0
    return _plain(value, _position) if mantissa in (2, 5) else ""


def _number_axis(axis: Any, scale: str) -> None:
    if scale == "log":
        axis.set_major_formatter(FuncFormatter(_plain))
        axis.set_minor_formatter(FuncFormatter(_plain_minor))


def frontier_png(sweeps: Sequence[ChipSweep], path: str | Path, title: str,
                 at_interactivity: float | None = None) -> Path:
    """Write the frontier plot of ``sweeps`` to ``path`` (its folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 6))
    xs, ys = [], []
    for index, sweep in enumerate(sweeps):
        colour = f"C{index % 10}"
        points = [p for p in sweep.points if p.tokens_per_s_chip > 0]
        ax.scatter([p.tokens_per_s_user for p in points], [p.tokens_per_s_chip for p in points], s=6,
                   color=colour, alpha=0.18, linewidths=0)
        front = sweep.frontier
        if not front:
            continue
        x, y = [p.tokens_per_s_user for p in front], [p.tokens_per_s_chip for p in front]
        xs += [p.tokens_per_s_user for p in points]
        ys += [p.tokens_per_s_chip for p in points]
        ax.plot(x, y, "-o", color=colour, ms=3.5, lw=2, label=f"{sweep.chip} ({len(points)} points)")
        for end, align in ((front[0], "left"), (front[-1], "right")):
            users = f"{end.concurrency} user{'s' if end.concurrency > 1 else ''}"
            ax.annotate(f"{end.split}, {users}", (end.tokens_per_s_user, end.tokens_per_s_chip),
                        xytext=(4 if align == "left" else -4, 6), textcoords="offset points", fontsize=7,
                        color=colour, ha=align)
    if at_interactivity:
        ax.axvline(at_interactivity, color="gray", ls="--", lw=1, label=f"{at_interactivity:g} tok/s per user")
    for axis, values, set_scale in ((ax.xaxis, xs, ax.set_xscale), (ax.yaxis, ys, ax.set_yscale)):
        set_scale(_log_if_wide(values))
        _number_axis(axis, _log_if_wide(values))
    ax.set(xlabel="interactivity: output tok/s per user (1 / TPOT)",
           ylabel="throughput: output tok/s per chip (prefill time included)", title=title)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
