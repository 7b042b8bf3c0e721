"""`accelsim attention ...`: flash vs unfused attention plans on each chip."""

from __future__ import annotations

import argparse

from accelsim.commands.common import add_chip_argument, add_json_argument, chips_from_args, count
from accelsim.report.plans import plans_table
from accelsim.report.table import render, si, to_json
from accelsim.tiling.attention import plan_attention, plan_unfused_attention

HELP = "plan prefill attention (flash-style, and the unfused alternative) on chips"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=count(), default=1)
    parser.add_argument("--heads", type=count(), required=True)
    parser.add_argument("--kv-heads", type=count(), help="key/value heads (default: --heads)")
    parser.add_argument("--q-len", type=count(), required=True)
    parser.add_argument("--kv-len", type=count(), help="default: --q-len")
    parser.add_argument("--head-dim", type=count(), default=128)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--dtype", default="bf16")
    add_chip_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    shape = (args.batch, args.heads, args.heads if args.kv_heads is None else args.kv_heads, args.q_len,
             args.q_len if args.kv_len is None else args.kv_len,
             args.head_dim, args.causal)
    rows = []
    for chip in chips_from_args(args.chip):
        flash = plan_attention(*shape, chip, args.dtype)
        naive = plan_unfused_attention(*shape, chip, args.dtype)
        rows.append({"chip": chip.name, "flash": flash, "unfused": naive,
                     "main_bytes_ratio": naive.main_bytes / flash.main_bytes, "speedup": naive.time_s / flash.time_s})
    if args.json:
        print(to_json([{**r, "flash": r["flash"].to_dict(), "unfused": r["unfused"].to_dict()} for r in rows]))
        return 0
    title = "attention B={} H={} G={} Sq={} Skv={} D={}{} {}".format(*shape[:6], " causal" if args.causal else "", args.dtype)
    print(plans_table([r["flash"] for r in rows], title + ": flash"))
    print()
    print(render(rows, [
        ("chip", lambda r: r["chip"]),
        ("flash main bytes", lambda r: si(r["flash"].main_bytes, "B")),
        ("unfused main bytes", lambda r: si(r["unfused"].main_bytes, "B")),
        ("unfused/flash bytes", lambda r: f"{r['main_bytes_ratio']:.1f}x"),
        ("unfused/flash time", lambda r: f"{r['speedup']:.2f}x"),
        ("S lives in", lambda r: r["unfused"].notes[0].split(" kept in ")[-1]),
        ("softmax exps", lambda r: si(r["flash"].other_ops["exp"])),
    ], title="flash vs unfused (S = QK^T materialised)"))
    return 0
