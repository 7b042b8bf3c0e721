"""`accelsim decode ...`: one decode step over a KV cache on each chip."""

from __future__ import annotations

import argparse

from accelsim.commands.common import MAX_BATCH, add_chip_argument, add_json_argument, chips_from_args, count
from accelsim.report.plans import plans_table
from accelsim.report.table import render, seconds, si, to_json
from accelsim.tiling.decode import plan_decode

HELP = "plan one decode step (KV-cache append + attention) per layer on chips"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=count(MAX_BATCH, "accelsim.commands.common.MAX_BATCH"), default=1)
    parser.add_argument("--heads", type=count(), required=True)
    parser.add_argument("--kv-heads", type=count(), help="default: --heads")
    parser.add_argument("--context", type=count(), required=True, help="tokens in the cache after this step's append")
    parser.add_argument("--cache-len", type=count(), help="cache capacity in tokens (default: --context)")
    parser.add_argument("--head-dim", type=count(), default=128)
    parser.add_argument("--page-size", type=count(), help="paged cache with this page size")
    parser.add_argument("--dtype", default="bf16", help="KV-cache and activation dtype")
    add_chip_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    kv_heads = args.heads if args.kv_heads is None else args.kv_heads
    lengths = [args.context] * args.batch
    cache_len = args.context if args.cache_len is None else args.cache_len
    plans = [plan_decode(lengths, args.heads, kv_heads, args.head_dim, cache_len, chip, args.dtype, args.page_size)
             for chip in chips_from_args(args.chip)]
    if args.json:
        print(to_json([{**p.to_dict(), "kv_cache_bytes_per_layer_step": p.other_ops["kv_cache_read_bytes"],
                        "time_per_layer_step_s": p.time_s} for p in plans]))
        return 0
    title = f"decode step per layer: B={args.batch} H={args.heads} G={kv_heads} L={args.context} D={args.head_dim} {args.dtype}"
    print(plans_table(plans, title))
    print()
    print(render(plans, [
        ("chip", lambda p: p.chip),
        ("KV-cache read", lambda p: si(p.other_ops["kv_cache_read_bytes"], "B")),
        ("KV-cache write", lambda p: si(p.other_ops["kv_cache_write_bytes"], "B")),
        ("time/layer-step", lambda p: seconds(p.time_s)),
        ("MBU", lambda p: f"{p.mbu:.0%}"),
        ("bound", lambda p: p.bound),
    ]))
    return 0
