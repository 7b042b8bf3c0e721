"""Timing and result files shared by the benchmarks: median of repeats after warm-up, JSON under results/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax

from accelsim.validate.timing import environment, median_time

__all__ = ["RESULTS", "environment", "median_time", "write_results"]

RESULTS = Path(__file__).parent / "results"


def write_results(name: str, rows: list[dict], **extra: Any) -> Path:
    """benchmarks/results/<name>-<backend>.json with the environment beside the rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{jax.default_backend()}.json"
    path.write_text(json.dumps({"environment": environment(), **extra, "rows": rows}, indent=2, default=str))
    return path
