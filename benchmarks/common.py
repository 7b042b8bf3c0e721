"""Timing and result files shared by the benchmarks: median of repeats after warm-up, JSON under results/."""

from __future__ import annotations

import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import jax

RESULTS = Path(__file__).parent / "results"


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
    devices = jax.devices()
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": platform.machine(),
        "backend": jax.default_backend(),
        "device": devices[0].device_kind if devices else "none",
        "jax": jax.__version__,
    }


def write_results(name: str, rows: list[dict], **extra: Any) -> Path:
    """benchmarks/results/<name>-<backend>.json with the environment beside the rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{jax.default_backend()}.json"
    path.write_text(json.dumps({"environment": environment(), **extra, "rows": rows}, indent=2))
    return path
