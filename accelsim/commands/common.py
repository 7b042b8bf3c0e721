"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import sys

from accelsim.chips import Chip, load_chip, preset_names
from accelsim.chips.loader import HOST_NAME, host_cache_path


def add_chip_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chip", action="append", metavar="NAME|FILE.toml",
                        help="a preset name or a chip file; repeat for several (default: every preset)")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def chips_from_args(names: list[str] | None) -> list[Chip]:
    """The chips named on the command line, or every preset (plus host once calibrated)."""
    if names:
        return [load_chip(n) for n in names]
    return [load_chip(n) for n in preset_names() if n != HOST_NAME or host_cache_path().exists()]


def progress(message: str) -> None:
    """Progress lines go to stderr so --json output stays clean."""
    print(message, file=sys.stderr, flush=True)
