"""`accelsim matmul M K N --chip A --chip B [--dtype bf16] [--json]`: one matmul's plan on each chip."""

from __future__ import annotations

import argparse

from accelsim.commands.common import add_chip_argument, add_json_argument, chips_from_args, count
from accelsim.report.plans import plans_table
from accelsim.report.table import to_json
from accelsim.tiling import plan_matmul

HELP = "plan C[M,N] = A[M,K] @ B[K,N] on chips: bytes per level, FLOPs, cycles, time, bound, MFU"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for dim in ("M", "K", "N"):
        parser.add_argument(dim, type=count())
    parser.add_argument("--dtype", default="bf16", help="input dtype (f32, bf16, fp16, fp8, int8)")
    add_chip_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    plans = [plan_matmul(args.M, args.K, args.N, chip, args.dtype) for chip in chips_from_args(args.chip)]
    print(to_json([p.to_dict() for p in plans]) if args.json else plans_table(plans, f"matmul {args.M}x{args.K}x{args.N} {args.dtype}"))
    return 0
