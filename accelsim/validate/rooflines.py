"""Place the suite's ops on every chip's roofline, each op planned for that chip."""

from __future__ import annotations

from pathlib import Path

from accelsim.chips import Chip
from accelsim.report.plots import roofline
from accelsim.tiling import plan_matmul
from accelsim.tiling.attention import plan_attention
from accelsim.tiling.decode import plan_decode
from accelsim.validate.suite import ATTENTION_SHAPES, DECODE_SHAPES, MATMUL_SIZES


def suite_points(chip: Chip, dtype: str = "bf16") -> list[dict]:
    """(FLOPs, main bytes, time) of each suite op as planned on ``chip``."""
    plans = [(f"mm {m}x{k}x{n}", plan_matmul(m, k, n, chip, dtype)) for m, k, n in MATMUL_SIZES]
    plans += [(f"attn S{s} D{d}", plan_attention(b, h, g, s, s, d, True, chip, dtype)) for b, h, g, s, d in ATTENTION_SHAPES]
    plans += [(f"dec L{l} B{b}", plan_decode([l] * b, h, g, d, l, chip, dtype)) for b, h, g, l, d in DECODE_SHAPES]
    return [{"label": label, "flops": p.flops, "bytes": p.main_bytes, "time_s": p.time_s} for label, p in plans]


def write_rooflines(chips: list[Chip], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for chip in chips:
        dtype = "f32" if chip.architecture == "cpu" else "bf16"
        paths.append(roofline(chip, suite_points(chip, dtype), folder / f"roofline-{chip.name}.png", dtype))
    return paths
