"""`accelsim demo`: the main job — SmolLM2 generates here through our kernels, then that very run is costed on every chip."""

from __future__ import annotations

import argparse

from accelsim.commands.common import add_json_argument, count
from accelsim.commands.run import DEFAULT_PROMPT, add_interpret_argument, run_and_cost

HELP = "the main job: generate text with SmolLM2 on this machine, then show what that run costs on every chip"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-new-tokens", type=count(), default=24)
    add_interpret_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    return run_and_cost(args.prompt, args.max_new_tokens, 0.0, 1, True, None, None, args.json, interpret=args.interpret)
