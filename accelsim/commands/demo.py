"""`accelsim demo`: the main job."""

from __future__ import annotations

import argparse

from accelsim.commands.common import chips_from_args
from accelsim.report.plans import plans_table
from accelsim.tiling import plan_matmul

HELP = "the main job: run a workload here and cost it on every chip"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=4096, help="square matmul size")


def run(args: argparse.Namespace) -> int:
    plans = [plan_matmul(args.size, args.size, args.size, chip, "bf16") for chip in chips_from_args(None)]
    print(plans_table(plans, f"matmul {args.size}^3 bf16 on every chip"))
    return 0
