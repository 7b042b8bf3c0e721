"""Validation as a benchmark: `python -m benchmarks.validate [--quick]` runs `accelsim validate`.

It times matmuls, attention, decode and SmolLM2 steps here, compares each with the prediction for the
calibrated host (or the matching GPU/TPU preset), and writes JSON and PNGs under benchmarks/results/.
"""

from __future__ import annotations

import sys

from accelsim.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
