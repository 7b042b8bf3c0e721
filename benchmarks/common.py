"""Timing, result files and the kernel form shared by the benchmarks: median of repeats after warm-up, JSON
under results/, Pallas interpret mode on request."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, ContextManager

import jax

from accelsim.validate.timing import environment, median_time
from kernels.backend import lowering_for

__all__ = ["RESULTS", "environment", "kernels_as", "median_time", "side_by_side", "write_results"]

RESULTS = Path(__file__).parent / "results"


def write_results(name: str, rows: list[dict], **extra: Any) -> Path:
    """benchmarks/results/<name>-<backend>.json with the environment beside the rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{jax.default_backend()}.json"
    path.write_text(json.dumps({"environment": environment(), **extra, "rows": rows}, indent=2, default=str))
    return path


def kernels_as(interpret: bool) -> ContextManager[None]:
    """Our kernels in Pallas interpret mode inside the block when ``interpret``, else the backend's default form."""
    return lowering_for("interpret") if interpret else contextlib.nullcontext()


def side_by_side(ours: Callable[[], Any], reference: Callable[[], Any], repeats: int = 5) -> tuple[float, float]:
    """Median wall times of ``ours()`` and ``reference()`` timed in alternation after one warm-up call each, so
    load from other work on a shared machine falls on both alike."""
    jax.block_until_ready(ours())
    jax.block_until_ready(reference())
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in zip((ours, reference), times):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])
