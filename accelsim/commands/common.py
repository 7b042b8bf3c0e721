"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

from accelsim.chips import Chip, load_chip, preset_names
from accelsim.chips.loader import HOST_NAME, host_cache_path
from accelsim.errors import AccelsimError
from accelsim.shapes import MAX_DIM, positive_int


def add_chip_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chip", action="append", metavar="NAME|FILE.toml",
                        help="a preset name or a chip file; repeat for several (default: every preset)")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--csv", action="store_true", help="print each table as CSV (a header row, then the rows)")


def chips_from_args(names: list[str] | None) -> list[Chip]:
    """The chips named on the command line, or every preset (plus host once calibrated)."""
    if names:
        return [load_chip(n) for n in names]
    chips = [load_chip(n) for n in preset_names() if n != HOST_NAME]
    if host_cache_path().exists():
        try:
            chips.append(load_chip(HOST_NAME))
        except AccelsimError as exc:  # a broken cache must not break every command: skip it, say why
            progress(f"skipping chip 'host': {exc}")
    return chips


def check_detail(detail: str, chips: list[Chip]) -> str:
    """``detail`` when it names one of ``chips`` (checked before any work, so nothing is printed first)."""
    names = [c.name for c in chips]
    if detail not in names:
        raise AccelsimError(f"--detail {detail} is not among the chips costed ({', '.join(names)})")
    return detail


def _shown(text: str) -> str:
    """A flag's value short enough to quote in a one-line message."""
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def progress(message: str) -> None:
    """Progress lines go to stderr so --json output stays clean."""
    print(message, file=sys.stderr, flush=True)


MAX_BATCH = 1 << 20  # sequences in one request: each gets its own length, so cost grows with the batch


def count(limit: int = MAX_DIM, limit_name: str = "accelsim.shapes.MAX_DIM") -> Callable[[str], int]:
    """An argparse ``type``: an integer from 1 to ``limit`` (0, negatives and words are usage errors)."""
    def parse(text: str) -> int:
        shown = _shown(text)
        if len(text.strip().lstrip("+-")) > 24:  # past any limit: never convert a 5000-digit number
            raise argparse.ArgumentTypeError(f"expected a positive integer up to {limit} ({limit_name}), got {shown}")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got '{shown}'") from None
        try:
            return positive_int("", value, limit, limit_name)
        except AccelsimError as exc:
            raise argparse.ArgumentTypeError(str(exc).strip()) from None
    parse.__name__ = "count"
    return parse


def finite(low: float = -math.inf, high: float = math.inf) -> Callable[[str], float]:
    """An argparse ``type``: a finite number from ``low`` to ``high`` (nan, inf and words are usage errors)."""
    def parse(text: str) -> float:
        shown = _shown(text)
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got '{shown}'") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a finite number from {low:g} to {high:g}, got '{shown}'")
        return value
    parse.__name__ = "number"
    return parse
