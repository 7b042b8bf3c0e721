"""`accelsim estimate --model llama-3-70b ...`: a large model's serving cost per chip, traced without weights."""

from __future__ import annotations

import argparse

import numpy as np

from accelsim.commands.common import add_chip_argument, add_json_argument, chips_from_args, progress
from accelsim.dtypes import canonical_dtype
from accelsim.errors import AccelsimError
from accelsim.models.capacity import plan_capacity
from accelsim.models.config import load_config
from accelsim.models.costing import cost_run
from accelsim.report.runs import ops_table, runs_table
from accelsim.report.table import to_json

HELP = "estimate prefill and decode of a Llama-family model on chips, by tracing the model with no weights"
WEIGHT_DTYPES = ("bf16", "fp8", "int8", "int4")
MAX_PRICED_STEPS = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="llama-3-8b, llama-3-70b, llama-3.1-405b, mixtral-8x7b, "
                                                       "smollm2-135m, or the path of a Hugging Face config.json")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=1024)
    parser.add_argument("--gen-len", type=int, default=256)
    parser.add_argument("--weights", default="bf16", help="weight dtype: bf16, fp8, int8 or int4 (weight-only; "
                                                          "matmuls run in bf16)")
    parser.add_argument("--kv-dtype", default="bf16", help="KV-cache dtype (the decode kernel attends in it)")
    parser.add_argument("--chips", type=int, help="chips to spread the model over (default: as few as fit)")
    parser.add_argument("--detail", help="also print this chip's per-op decode table")
    add_chip_argument(parser)
    add_json_argument(parser)


def decode_lengths(prompt_len: int, gen_len: int) -> list[np.ndarray]:
    """Lengths of the decode steps to price: all of them up to 16, else 16 spread evenly (their mean is TPOT)."""
    steps = np.arange(prompt_len + 1, prompt_len + gen_len)
    if len(steps) > MAX_PRICED_STEPS:
        steps = np.unique(np.linspace(steps[0], steps[-1], MAX_PRICED_STEPS).round().astype(int))
    return [np.asarray([s], np.int32) for s in steps]


def run(args: argparse.Namespace) -> int:
    config = load_config(args.model)
    weights = canonical_dtype(args.weights)
    if weights not in WEIGHT_DTYPES:
        raise AccelsimError(f"--weights {args.weights}: expected one of {', '.join(WEIGHT_DTYPES)}")
    for name in ("batch", "prompt_len", "gen_len"):
        if getattr(args, name) < 1:
            raise AccelsimError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(args, name)})")
    if args.prompt_len + args.gen_len > config.max_position_embeddings:
        raise AccelsimError(f"prompt of {args.prompt_len} + {args.gen_len} generated tokens is longer than "
                            f"{config.name}'s context ({config.max_position_embeddings})")
    if args.chips is not None and args.chips < 1:
        raise AccelsimError(f"--chips {args.chips} is impossible: at least 1")
    chips = chips_from_args(args.chip)
    for chip in chips:  # refuse an impossible --chips before any work or output
        plan_capacity(config, chip, args.batch, args.prompt_len + args.gen_len, weights, args.kv_dtype, args.chips)
    lengths = [np.repeat(l, args.batch) for l in decode_lengths(args.prompt_len, args.gen_len)]
    progress(f"tracing {config.name} (no weights) with each chip's blocks; pricing prefill and "
             f"{len(lengths)} decode steps per chip...")
    runs = [cost_run(config, chip, args.batch, args.prompt_len, lengths, weight_dtype=weights,
                     act_dtype="bf16", kv_dtype=args.kv_dtype, chips=args.chips, progress=progress)
            for chip in chips]
    if args.json:
        print(to_json({"model": config.name, "batch": args.batch, "prompt_len": args.prompt_len,
                       "gen_len": args.gen_len, "weights": weights, "kv_dtype": args.kv_dtype,
                       "priced_decode_lengths": [int(l[0]) for l in lengths],
                       "chips": [r.to_dict() for r in runs]}))
        return 0
    title = (f"{config.name}: batch {args.batch}, prompt {args.prompt_len}, generate {args.gen_len}, "
             f"{weights} weights, {args.kv_dtype} KV")
    print(runs_table(runs, title))
    if args.detail:
        chosen = next((r for r in runs if r.chip == args.detail), None)
        if chosen is None:
            raise AccelsimError(f"--detail {args.detail} is not among the chips costed")
        print()
        print(ops_table(chosen.decode, config.num_layers, f"{chosen.chip}: last priced decode step, by op"))
    return 0
