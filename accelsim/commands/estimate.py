"""`accelsim estimate --model llama-3-70b ...`: a large model's serving cost per chip, traced without weights."""

from __future__ import annotations

import argparse

from accelsim.commands.common import (MAX_BATCH, add_chip_argument, add_json_argument, check_detail, chips_from_args,
                                      count, progress)
from accelsim.errors import AccelsimError
from accelsim.models.capacity import Split
from accelsim.models.config import model_names
from accelsim.models.estimate import WEIGHT_DTYPES, run_estimate
from accelsim.report.runs import ops_table, runs_table, unpriced_table
from accelsim.report.table import to_json

HELP = "estimate prefill and decode of a Llama-family model on chips, by tracing the model with no weights"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a shipped config (" + ", ".join(model_names()) + ") "
                                                       "or the path of a Hugging Face config.json")
    parser.add_argument("--batch", type=count(MAX_BATCH, "accelsim.commands.common.MAX_BATCH"), default=1)
    parser.add_argument("--prompt-len", type=count(), default=1024)
    parser.add_argument("--gen-len", type=count(), default=256)
    parser.add_argument("--weights", default="bf16", help="weight dtype: " + ", ".join(WEIGHT_DTYPES) + " (weight-only: "
                                                          "widened to bf16 per block, unless --low-precision-compute)")
    parser.add_argument("--low-precision-compute", action="store_true",
                        help="matmuls multiply in the weight dtype (W8A8 / FP8 / FP4 compute), not widened to bf16")
    parser.add_argument("--kv-dtype", default="bf16", help="KV-cache dtype (the decode kernel attends in it)")
    parser.add_argument("--chips", type=count(), help="chips to spread the model over (default: as few as fit)")
    parser.add_argument("--split", type=_split, help="the parallel split, e.g. TP8, TP8xPP2, PP72, EP8 "
                                                     "(default: --chips, or as few as fit)")
    parser.add_argument("--no-cuda-graphs", action="store_true",
                        help="launch each decode kernel from the host (kernel launches can bind) instead of one "
                             "CUDA graph per step")
    parser.add_argument("--sustained", action="store_true",
                        help="price at the chip files' [sustained] (achieved) FLOP/s and bandwidth where they give them")
    parser.add_argument("--detail", help="also print this chip's per-op decode table")
    add_chip_argument(parser)
    add_json_argument(parser)


def _split(text: str) -> Split:
    try:
        return Split.parse(text)
    except AccelsimError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    chips = chips_from_args(args.chip)
    if args.detail is not None:
        check_detail(args.detail, chips)
    result = run_estimate(args.model, chips, batch=args.batch, prompt_len=args.prompt_len, gen_len=args.gen_len,
                          weights=args.weights, kv_dtype=args.kv_dtype, num_chips=args.chips, progress=progress,
                          low_precision_compute=args.low_precision_compute, split=args.split,
                          cuda_graphs=not args.no_cuda_graphs, sustained=args.sustained)
    if args.detail and args.detail not in [r.chip for r in result.runs]:
        raise AccelsimError(f"--detail {args.detail}: that chip could not be priced (see above)")
    if args.json:
        print(to_json(result.to_dict()))
        return 0
    print(runs_table(list(result.runs), result.title) if result.runs else result.title)
    if result.unpriced:
        print()
        print(unpriced_table(list(result.unpriced)))
    if args.detail:
        chosen = next(r for r in result.runs if r.chip == args.detail)
        print()
        print(ops_table(chosen.decode, result.config.num_layers, f"{chosen.chip}: last priced decode step, by op"))
    return 0
