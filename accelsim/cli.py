"""The `accelsim` command line: a registry of subcommands, and one-line errors for bad input."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from accelsim.errors import AccelsimError
from accelsim.report.table import csv_tables

COMMANDS = ("demo", "chips", "calibrate", "matmul", "attention", "decode", "run", "estimate", "validate", "frontier")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("accelsim").strip()
        self.exit(2, f"accelsim: error: {command + ': ' if command else ''}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="accelsim", description="Run AI workloads in JAX and cost them on accelerators.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"accelsim.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"accelsim.commands.{name}":
                continue  # not built yet
            raise
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (2 for bad input, with one line on stderr and nothing on stdout)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors and --help: argparse has printed its line
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with csv_tables(getattr(args, "csv", False)):
            return args.handler(args)
    except AccelsimError as exc:
        print(f"accelsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
