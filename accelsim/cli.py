"""The `accelsim` command line: a registry of subcommands, and one-line errors for bad input."""

from __future__ import annotations

import argparse
import importlib
import sys

from accelsim.errors import AccelsimError

COMMANDS = ("demo", "chips", "calibrate", "matmul", "attention", "decode", "run", "estimate", "validate")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


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
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except AccelsimError as exc:
        print(f"accelsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
