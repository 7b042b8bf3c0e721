"""Measure the running machine and write it as the ``host`` chip.

``calibrate()`` times jitted matmuls through XLA (f32 and bf16, a few square sizes, warm-up then the
median of repeats, best size kept) for peak FLOP/s, runs a STREAM-style triad ``a = a + s * b`` over a
working set several times the last-level cache (main-memory bandwidth) and over half of it (cache
bandwidth), and reads cache sizes, memory size and clock from the OS. The result is written in the
ordinary chip-file schema to ``accelsim.chips.loader.host_cache_path()`` and checked by loading it back.
Every ``source`` says where, when and how its figure was measured.

The measurements live in ``measure``, what the OS reports in ``sysinfo``, the chip tables in
``host_chip`` and the TOML writer in ``toml_writer``; this module runs them in order and writes the file.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import tomllib
from pathlib import Path

import jax

from accelsim.chips.host_chip import Progress, cpu_chip, gpu_chip
from accelsim.chips.loader import HOST_NAME, chip_from_dict, host_cache_path
from accelsim.chips.measure import FULL, QUICK, measure_matmul
from accelsim.chips.toml_writer import to_toml
from accelsim.files import ensure_writable_dir

__all__ = ["calibrate", "to_toml"]


def calibrate(progress: Progress | None = None, quick: bool = False) -> Path:
    """Measure this machine, write the ``host`` chip file, and return its path."""
    say = progress or (lambda message: None)
    path = host_cache_path()  # its folder is checked before any measuring: a bad ACCELSIM_CACHE fails at once
    ensure_writable_dir(path.parent, f"the host chip file {path} (ACCELSIM_CACHE={os.environ.get('ACCELSIM_CACHE', 'unset')})")
    plan = QUICK if quick else FULL
    started = time.perf_counter()
    where = f"{socket.gethostname()} at {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    backend = jax.default_backend()
    device = jax.devices()[0]
    on_gpu = backend == "gpu"
    say(f"calibrating {HOST_NAME} on {backend} ({device.device_kind}){' [quick]' if quick else ''}")

    sizes = plan.gpu_sizes if on_gpu else plan.cpu_sizes
    flops = {}
    for dtype in ("f32", "bf16"):
        say(f"  {dtype} matmul: sizes {', '.join(map(str, sizes))}")
        flops[dtype] = measure_matmul(dtype, sizes, plan.matmul_repeats, plan.matmul_budget_s)
        say(f"    {flops[dtype].flops_per_s / 1e9:,.1f} GFLOP/s at n={flops[dtype].size}")

    data = gpu_chip(device, flops, plan, where, say) if on_gpu else cpu_chip(flops, plan, where, say)
    data["description"] += f"; calibration took {time.perf_counter() - started:.1f} s"

    text = to_toml(data)
    chip_from_dict(tomllib.loads(text), where=str(path))  # refuse to write a file the loader rejects
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    say(f"wrote {path} in {time.perf_counter() - started:.1f} s")
    return path
