"""`accelsim calibrate [--quick]`: measure this machine and cache it as the `host` chip."""

from __future__ import annotations

import argparse

from accelsim.chips import load_chip
from accelsim.commands.common import progress
from accelsim.report.chips import chips_table

HELP = ("measure this machine (peak matmul FLOP/s through XLA, stream and cache bandwidth, the grid-step cost of our "
        "compiled kernels) and cache it as chip 'host'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats (about 15 s)")
    parser.add_argument("--csv", action="store_true", help="print the measured chip's table as CSV")


def run(args: argparse.Namespace) -> int:
    from accelsim.chips.calibrate import calibrate

    path = calibrate(progress=progress, quick=args.quick)
    print(chips_table([load_chip("host")]))
    print(f"\nwrote {path}")
    return 0
