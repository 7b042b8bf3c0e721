"""Wall-clock timing of jitted work (median of repeats after warm-up) and a record of where it ran."""

from __future__ import annotations

import platform
import statistics
import time
from datetime import datetime, timezone
from typing import Any, Callable

import jax


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` with its result blocked on, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def environment() -> dict[str, Any]:
    """When, where and on what a measurement ran."""
    devices = jax.devices()
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": platform.machine(),
        "backend": jax.default_backend(),
        "device": devices[0].device_kind if devices else "none",
        "jax": jax.__version__,
    }
