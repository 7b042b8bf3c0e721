"""`accelsim run --model smollm2-135m --prompt ... --max-new-tokens N --chip ...`: generate here, cost it per chip."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

from accelsim.commands.common import (add_chip_argument, add_json_argument, check_detail, chips_from_args, count,
                                      finite, progress)
from accelsim.errors import AccelsimError
from accelsim.models.config import model_names
from accelsim.models.costing import cost_run
from accelsim.models.session import SMOLLM2, run_smollm2
from accelsim.report.runs import ops_table, runs_table
from accelsim.report.table import seconds, to_json
from kernels.backend import lowering_for

HELP = "generate text with SmolLM2 on this machine through our kernels, then cost that run on chips"
DEFAULT_PROMPT = "What is the capital of France? Answer in one sentence."
DEFAULT_DETAIL = "h100-sxm"
MAX_RUN_BATCH = 64  # `run` executes the model here: copies of the prompt held in this machine's memory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=SMOLLM2, help="a model with real weights here (only smollm2-135m ships)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-new-tokens", type=count(), default=24)
    parser.add_argument("--temperature", type=finite(0.0), default=0.0, help="0 = greedy")
    parser.add_argument("--batch", type=count(MAX_RUN_BATCH, "accelsim.commands.run.MAX_RUN_BATCH"), default=1, help="copies of the prompt decoded together")
    parser.add_argument("--raw", action="store_true", help="no chat template around the prompt")
    parser.add_argument("--tensor-parallel", type=count(), default=1,
                        help="devices the model runs on, heads split over them (a CPU host makes that many)")
    add_interpret_argument(parser)
    parser.add_argument("--detail", help=f"chip whose per-op table is printed (default: {DEFAULT_DETAIL} if costed, else the first chip)")
    add_chip_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    if args.model != SMOLLM2:
        known = ", ".join(model_names())
        raise AccelsimError(f"model '{args.model}' has no weights here: `run` executes {SMOLLM2} only "
                            f"(use `accelsim estimate --model` for {known})")
    return run_and_cost(args.prompt, args.max_new_tokens, args.temperature, args.batch, not args.raw,
                        args.chip, args.detail, args.json, args.tensor_parallel, args.interpret)


def add_interpret_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interpret", action="store_true",
                        help="run our kernels in Pallas interpret mode (the check of Pallas semantics; slow) instead "
                             "of compiled")


def run_and_cost(prompt: str, max_new_tokens: int, temperature: float, batch: int, chat: bool,
                 chip_names: list[str] | None, detail: str | None, as_json: bool, tensor_parallel: int = 1,
                 interpret: bool = False) -> int:
    """Generate here (our kernels compiled, or in Pallas interpret mode with ``interpret``), then cost the run on
    each chip."""
    if not prompt.strip():
        raise AccelsimError("--prompt is empty: give the text the model should answer or continue")
    chips = chips_from_args(chip_names)
    if detail is None:
        detail = DEFAULT_DETAIL if DEFAULT_DETAIL in [c.name for c in chips] else chips[0].name
    check_detail(detail, chips)
    for chip in chips:  # a chip that cannot price the run's dtype fails now, not after the text is printed
        chip.peak_flops(_dtype(chip))
    stream = None if as_json else _Stream(f"prompt: {prompt}\n\nSmolLM2-135M-Instruct, on this machine through "
                                          "accelsim's kernels:\n")
    started = time.perf_counter()
    with lowering_for("interpret") if interpret else contextlib.nullcontext():
        host_run = run_smollm2(prompt, max_new_tokens, temperature, chat, batch, progress=progress, on_text=stream,
                               tensor_parallel=tensor_parallel)
    gen = host_run.generation
    if stream:
        stream("")
        print("\n")
    warm = gen.decode_s[1:] or gen.decode_s  # the first decode step compiles
    measured_tpot = statistics.median(warm) if warm else 0.0
    progress(f"costing that run on {len(chips)} chips (traced with each chip's own blocks)...")
    runs = [cost_run(host_run.config, chip, batch, len(host_run.prompt_ids), gen.decode_lengths,
                     act_dtype=_dtype(chip), weight_dtype=_dtype(chip)) for chip in chips]
    if as_json:
        print(to_json({"text": host_run.text, "prompt_tokens": len(host_run.prompt_ids),
                       "new_tokens": int(gen.new_tokens.shape[1]),
                       "measured_on_host": {"kernels": "interpret" if interpret else "compiled",
                                            "prefill_s": gen.prefill_s, "tpot_s": measured_tpot,
                                            "wall_s": time.perf_counter() - started},
                       "chips": [r.to_dict() for r in runs]}))
        return 0
    n_new = gen.new_tokens.shape[1]
    print(runs_table(runs, f"that run ({len(host_run.prompt_ids)} prompt tokens, {n_new} new, batch {batch}) "
                           "on each chip: bf16 weights and KV (host: f32, as executed)"))
    print(f"\nmeasured here ({'Pallas interpret mode' if interpret else 'kernels compiled'}): prefill "
          f"{seconds(gen.prefill_s)} (includes compilation on first use), "
          f"decode {seconds(measured_tpot)} per token (median, first step's compile excluded)")
    chosen = next(r for r in runs if r.chip == detail)
    print()
    print(ops_table(chosen.decode, host_run.config.num_layers,
                    f"{chosen.chip}: one decode step at context {int(gen.decode_lengths[-1][0]) if gen.decode_lengths else len(host_run.prompt_ids)}, by op"))
    return 0


def _dtype(chip) -> str:
    """The dtype a run is priced in on ``chip``: f32 on the host, as executed; bf16 elsewhere."""
    return "f32" if chip.name == "host" else "bf16"


class _Stream:
    """Prints generated text as it comes, after a header held back until the first piece (so an error
    raised before generation starts leaves stdout empty)."""

    def __init__(self, header: str) -> None:
        self.header = header

    def __call__(self, piece: str) -> None:
        if self.header:
            print(self.header, flush=True)
            self.header = ""
        print(piece, end="", flush=True)
