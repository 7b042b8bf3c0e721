"""Place the suite's ops on every chip's roofline, each op planned for that chip."""

from __future__ import annotations

from pathlib import Path

from accelsim.chips import Chip
from accelsim.report.plots import roofline
from accelsim.ops import all_ops


def suite_points(chip: Chip, dtype: str = "bf16") -> list[dict]:
    """(FLOPs, main bytes, time) of every registered op's suite shapes as planned on ``chip``."""
    plans = [(op.label(shape), op.plan(shape, chip, dtype)) for op in all_ops() for shape in op.suite_shapes]
    return [{"label": label, "flops": p.flops, "bytes": p.main_bytes, "time_s": p.time_s} for label, p in plans]


def write_rooflines(chips: list[Chip], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for chip in chips:
        dtype = "f32" if chip.architecture == "cpu" else "bf16"
        paths.append(roofline(chip, suite_points(chip, dtype), folder / f"roofline-{chip.name}.png", dtype))
    return paths
