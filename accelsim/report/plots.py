"""PNG plots: predicted vs measured (log-log, y = x) and a roofline per chip with ops placed on it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from accelsim.chips import Chip  # noqa: E402

MARKERS = {"ours": "o", "xla": "s"}


def predicted_vs_measured(cases: list[dict], path: Path, title: str, cutoff_s: float) -> Path:
    """Each case at (measured, predicted), our kernels and XLA's ops apart, with y = x and ±15% bands."""
    fig, ax = plt.subplots(figsize=(7, 6))
    for impl, marker in MARKERS.items():
        rows = [c for c in cases if c["impl"] == impl]
        if rows:
            ax.scatter([c["measured_s"] for c in rows], [c["predicted_s"] for c in rows], marker=marker,
                       label=f"{impl} ({'our Pallas kernels' if impl == 'ours' else 'XLA native ops'})", alpha=0.8)
    values = [c[k] for c in cases for k in ("measured_s", "predicted_s") if c[k] > 0]
    lo, hi = min(values) / 2, max(values) * 2
    line = np.geomspace(lo, hi, 50)
    ax.plot(line, line, "k-", lw=1, label="y = x")
    ax.fill_between(line, line * 0.85, line * 1.15, color="gray", alpha=0.2, label="±15%")
    ax.axhline(cutoff_s, color="tab:red", ls=":", lw=1, label=f"cut-off {cutoff_s * 1e3:.0f} ms")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured time (s)",
           ylabel="predicted time (s)", title=title)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def roofline(chip: Chip, points: list[dict], path: Path, dtype: str = "bf16") -> Path:
    """The chip's roofline (peak dense FLOP/s, main-memory bandwidth) with ops at (FLOP/byte, FLOP/s)."""
    dtype = dtype if dtype in chip.matrix.dense_flops else next(iter(chip.matrix.dense_flops))
    peak, bandwidth = chip.peak_flops(dtype), chip.main_memory.bandwidth_bytes_per_s
    fig, ax = plt.subplots(figsize=(7, 5))
    intensity = np.geomspace(1e-2, 1e5, 200)
    ax.plot(intensity, np.minimum(peak, intensity * bandwidth), "k-", lw=1.5,
            label=f"{chip.name}: {peak / 1e12:.3g} TFLOP/s {dtype}, {bandwidth / 1e12:.3g} TB/s {chip.main_memory.name}")
    ax.axvline(peak / bandwidth, color="gray", ls=":", lw=1)
    for point in points:
        if point["flops"] > 0 and point["bytes"] > 0 and point["time_s"] > 0:
            ax.scatter(point["flops"] / point["bytes"], point["flops"] / point["time_s"], s=25,
                       marker=MARKERS.get(point.get("impl", "ours"), "o"))
            ax.annotate(point["label"], (point["flops"] / point["bytes"], point["flops"] / point["time_s"]),
                        fontsize=6, alpha=0.8, xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP / main-memory byte)",
           ylabel="achieved FLOP/s (modelled)", title=f"roofline: {chip.name}")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
