"""The Pareto frontier of serving points (maximise tok/s per user and tok/s per chip) and reading it at a speed.

``pareto`` keeps every point no other point beats on both axes (ties on both keep the first seen), ordered
by rising per-user speed, so per-chip throughput falls along it. ``at_interactivity`` reads a frontier at a
fixed per-user speed two ways: the best real point at least that fast, and the per-chip throughput
interpolated (linearly in log-log) between the two frontier points around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from accelsim.serving.point import ServingPoint


def pareto(points: Sequence[ServingPoint]) -> list[ServingPoint]:
    """The non-dominated points, by rising tok/s per user (tok/s per chip strictly falling along them)."""
    ordered = sorted(points, key=lambda p: (-p.tokens_per_s_user, -p.tokens_per_s_chip))
    kept: list[ServingPoint] = []
    for point in ordered:
        if not kept or point.tokens_per_s_chip > kept[-1].tokens_per_s_chip:
            kept.append(point)
    return kept[::-1]


@dataclass(frozen=True)
class AtInteractivity:
    """A frontier read at ``tokens_per_s_user``: ``point`` is the frontier point with the most tok/s per chip
    among those at least that fast (None if none is); ``interpolated_tokens_per_s_chip`` is read off the
    frontier's line (log-log) at exactly that speed (None outside the frontier's span)."""

    tokens_per_s_user: float
    point: ServingPoint | None
    interpolated_tokens_per_s_chip: float | None


def at_interactivity(frontier: Sequence[ServingPoint], tokens_per_s_user: float) -> AtInteractivity:
    """``frontier`` (as ``pareto`` returns it) read at a fixed per-user speed."""
    fast_enough = [p for p in frontier if p.tokens_per_s_user >= tokens_per_s_user]
    best = max(fast_enough, key=lambda p: p.tokens_per_s_chip) if fast_enough else None
    return AtInteractivity(tokens_per_s_user, best, _interpolate(frontier, tokens_per_s_user))


def _interpolate(frontier: Sequence[ServingPoint], x: float) -> float | None:
    for low, high in zip(frontier, frontier[1:]):
        if low.tokens_per_s_user <= x <= high.tokens_per_s_user:
            x0, x1 = math.log(low.tokens_per_s_user), math.log(high.tokens_per_s_user)
            y0, y1 = math.log(low.tokens_per_s_chip), math.log(high.tokens_per_s_chip)
            t = (math.log(x) - x0) / (x1 - x0) if x1 > x0 else 0.0
            return math.exp(y0 + t * (y1 - y0))
    if len(frontier) == 1 and math.isclose(frontier[0].tokens_per_s_user, x):
        return frontier[0].tokens_per_s_chip
    return None
