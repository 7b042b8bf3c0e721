"""`accelsim chips [NAME] [--json]`: the chip library."""

from __future__ import annotations

import argparse

from accelsim.chips import load_chip
from accelsim.commands.common import add_json_argument, chips_from_args
from accelsim.report.chips import chip_json, chips_table
from accelsim.report.table import to_json

HELP = "list chip presets (peak, memory levels, ridge point, sources) or show one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="one chip: a preset name or a chip file")
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    chips = [load_chip(args.name)] if args.name else chips_from_args(None)
    if args.json:
        print(to_json(chip_json(chips[0]) if args.name else [chip_json(c) for c in chips]))
    else:
        print(chips_table(chips))
    return 0
