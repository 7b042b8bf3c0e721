"""`accelsim frontier --model M --chip A --chip B ...`: the serving frontier, tok/s per user against tok/s per chip.

Every input is checked before any pricing, so a bad one is one line on stderr (exit 2) and nothing on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from accelsim.chips import Chip, load_chip
from accelsim.commands.common import add_json_argument, count, finite
from accelsim.dtypes import canonical_dtype
from accelsim.errors import AccelsimError
from accelsim.models.config import LlamaConfig, load_config, model_names
from accelsim.models.estimate import WEIGHT_DTYPES
from accelsim.report.table import footnote, render, seconds, si, to_json
from accelsim.serving.economics import chip_watts, parse_prices, with_economics
from accelsim.serving.frontier import ChipSweep, Workload, planned_points, sweep
from accelsim.serving.speculative import Speculation, draft_config, speculative_pricer
from accelsim.serving.summary import AT_INTERACTIVITY_METHOD, interactivity_rows, length_rows

HELP = "sweep concurrency and parallel splits into the Pareto frontier of tok/s per user against tok/s per chip"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a shipped config (" + ", ".join(model_names()) + ") "
                                                       "or the path of a Hugging Face config.json")
    parser.add_argument("--chip", action="append", default=[], metavar="NAME|FILE.toml",
                        help="a chip to sweep; repeat for several")
    parser.add_argument("--isl", type=count(), default=1024, help="input (prompt) tokens per request")
    parser.add_argument("--osl", default="1024", help="output tokens per request; a comma list (1024,8192) "
                                                      "sweeps each and compares them")
    parser.add_argument("--weights", default="bf16", help="weight dtype: " + ", ".join(WEIGHT_DTYPES))
    parser.add_argument("--kv-dtype", default="bf16", help="KV-cache dtype")
    parser.add_argument("--low-precision-compute", action="store_true",
                        help="matmuls multiply in the weight dtype (W8A8 / FP8 / FP4), not widened to bf16")
    parser.add_argument("--max-chips", type=count(), help="largest replica to consider (default: any that fits)")
    parser.add_argument("--points-per-octave", type=count(64), default=4,
                        help="concurrencies swept per doubling (default 4)")
    parser.add_argument("--price", action="append", default=[], metavar="CHIP=USD|FILE.toml",
                        help="price per chip-hour (repeat), or a TOML file of chip = price; no price, no cost columns")
    parser.add_argument("--at-interactivity", type=finite(), metavar="TOK_S_PER_USER",
                        help="compare the chips at this per-user speed")
    parser.add_argument("--draft-model", help="speculative decoding: a draft model (name or config.json), or "
                                              "self:N for the target's first N layers")
    parser.add_argument("--acceptance", type=finite(), help="the draft's per-token acceptance rate, in [0, 1)")
    parser.add_argument("--draft-len", type=count(64), help="tokens drafted per step (default 4)")
    parser.add_argument("--prefill-chip", metavar="NAME|FILE.toml", help="disaggregated: the prefill pool's chip")
    parser.add_argument("--decode-chip", metavar="NAME|FILE.toml", help="disaggregated: the decode pool's chip")
    parser.add_argument("--png", metavar="PATH", help="write the frontier plot here (of the last --osl)")
    parser.add_argument("--all-points", action="store_true", help="print every evaluated point, not only the frontier")
    add_json_argument(parser)


def _lengths(text: str, isl: int, config: LlamaConfig) -> list[int]:
    lengths = []
    for part in text.split(","):
        if not part.strip().isdigit() or len(part.strip()) > 10 or int(part) < 1:
            raise AccelsimError(f"--osl {text}: expected positive whole numbers separated by commas")
        if isl + int(part) > config.max_position_embeddings:
            raise AccelsimError(f"--osl {part}: {isl} + {part} tokens is longer than {config.name}'s context "
                                f"({config.max_position_embeddings})")
        lengths.append(int(part))
    return lengths


def _speculation(args: argparse.Namespace) -> Speculation | None:
    if args.draft_model is None:
        if args.acceptance is not None or args.draft_len is not None:
            raise AccelsimError("--acceptance and --draft-len need --draft-model")
        return None
    if args.acceptance is None:
        raise AccelsimError("--draft-model needs --acceptance (benchmarks/acceptance.py measures one)")
    return Speculation(args.draft_model, args.acceptance, 4 if args.draft_len is None else args.draft_len)


class Bar:
    """A progress bar on stderr (a terminal only), redrawn at most ten times a second."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.shown, self.live = total, 0, 0.0, sys.stderr.isatty()

    def __call__(self, _done: int, _total: int, label: str) -> None:
        self.done += 1
        done = self.done
        if not self.live or (time.monotonic() - self.shown < 0.1 and done < self.total):
            return
        self.shown = time.monotonic()
        filled = int(30 * done / max(self.total, 1))
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} {label[:40]:<40}", end="",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.model)
    weights = canonical_dtype(args.weights)
    if weights not in WEIGHT_DTYPES:
        raise AccelsimError(f"--weights {args.weights}: expected one of {', '.join(WEIGHT_DTYPES)}")
    if (args.prefill_chip is None) != (args.decode_chip is None):
        raise AccelsimError("--prefill-chip and --decode-chip go together: give both")
    if not args.chip and args.prefill_chip is None:
        raise AccelsimError("--chip: give at least one chip to sweep (or --prefill-chip and --decode-chip)")
    chips = [load_chip(name) for name in args.chip]
    pools = (load_chip(args.prefill_chip), load_chip(args.decode_chip)) if args.prefill_chip else None
    swept = [c.name for c in chips] + ([p.name for p in pools] if pools else [])
    prices = parse_prices(args.price, swept)
    if args.at_interactivity is not None and args.at_interactivity <= 0:
        raise AccelsimError(f"--at-interactivity {args.at_interactivity:g}: expected a speed > 0 tok/s per user")
    lengths = _lengths(args.osl, args.isl, config)
    speculation = _speculation(args)
    draft = draft_config(speculation.draft, config) if speculation else None
    if pools and speculation:
        raise AccelsimError("--draft-model with --prefill-chip/--decode-chip is not modelled: use one or the other")
    watts = {c.name: chip_watts(c) for c in chips + list(pools or ())}
    workloads = [Workload(config, args.isl, osl, weights, canonical_dtype(args.kv_dtype), args.low_precision_compute,
                          args.max_chips) for osl in lengths]
    on = chips + ([pools[1]] if pools else [])
    bar = Bar(sum(planned_points(w, on, args.points_per_octave) for w in workloads))
    runs = [(w.osl, _sweeps(w, chips, pools, speculation, draft, args.points_per_octave, bar)) for w in workloads]
    bar.close()
    if args.png:
        from accelsim.report.frontier_plot import frontier_png

        osl, sweeps = runs[-1]
        frontier_png(sweeps, args.png, _title(config, args.isl, osl, weights, speculation), args.at_interactivity)
    report = _report(args, config, weights, runs, prices, watts, speculation)
    if args.json:
        print(to_json(report))
    else:
        _print(report, args.all_points)
    return 0


def _sweeps(workload: Workload, chips: list[Chip], pools: tuple[Chip, Chip] | None,
            speculation: Speculation | None, draft: LlamaConfig | None, per_octave: int, bar: Bar) -> list[ChipSweep]:
    from accelsim.serving.disaggregation import disaggregated_sweep

    point = speculative_pricer(speculation, draft) if speculation and draft else None
    sweeps = [sweep(workload, chip, per_octave, bar, point) for chip in chips]
    if pools:
        sweeps.append(disaggregated_sweep(workload, *pools, per_octave, bar))
    return sweeps


def _title(config: LlamaConfig, isl: int, osl: int, weights: str, speculation: Speculation | None) -> str:
    spec = (f", speculative: {speculation.draft} k={speculation.draft_len} a={speculation.acceptance:g}"
            if speculation else "")
    return f"{config.name}: {isl} in / {osl} out, {weights} weights{spec}"


def _report(args: argparse.Namespace, config: LlamaConfig, weights: str, runs: list, prices: dict, watts: dict,
            speculation: Speculation | None) -> dict[str, Any]:
    def annotate(point: Any) -> dict:
        return with_economics(point, prices, watts)

    out: dict[str, Any] = {"model": config.name, "isl": args.isl, "weights": weights, "kv_dtype": args.kv_dtype,
                           "prices_per_chip_hour": prices, "watts_per_chip": watts,
                           "speculation": speculation.__dict__ | {"tokens_per_step": speculation.tokens_per_step}
                           if speculation else None, "runs": []}
    for osl, sweeps in runs:
        entry: dict[str, Any] = {"osl": osl, "title": _title(config, args.isl, osl, weights, speculation),
                                 "chips": [s.to_dict(annotate) for s in sweeps]}
        if args.at_interactivity is not None:
            entry["at_interactivity"] = {"tokens_per_s_user": args.at_interactivity, "method": AT_INTERACTIVITY_METHOD,
                                         "chips": interactivity_rows(sweeps, args.at_interactivity, prices, watts)}
        out["runs"].append(entry)
    out["by_osl"] = length_rows(runs, prices, watts) if len(runs) > 1 else []
    out["png"] = args.png
    return out


def _money(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"${value:.{digits}g}"


def _columns(rows: list[dict]) -> list:
    columns = [("chip", lambda r: r["chip"]), ("split", lambda r: r["split"]),
               ("chips", lambda r: f"{r['chips']:.3g}"), ("users", lambda r: r["concurrency"]),
               ("TTFT", lambda r: seconds(r["ttft_s"])),
               ("TPOT", lambda r: "-" if r["tpot_s"] is None else seconds(r["tpot_s"])),
               ("tok/s/user", lambda r: si(r["tokens_per_s_user"])),
               ("tok/s/chip", lambda r: si(r["tokens_per_s_chip"])),
               ("tok/s total", lambda r: si(r["tokens_per_s_total"])), ("limit", lambda r: r["binding_limit"])]
    if any("cost_per_mtok" in r for r in rows):
        columns += [("$/Mtok", lambda r: _money(r.get("cost_per_mtok"))),
                    ("$/query", lambda r: _money(r.get("cost_per_query")))]
    if any("joules_per_token" in r for r in rows):
        columns += [("J/tok", lambda r: si(r["joules_per_token"]) if "joules_per_token" in r else "-"),
                    ("tok/J", lambda r: si(r["tokens_per_joule"]) if "tokens_per_joule" in r else "-")]
    return columns


def _print(report: dict, all_points: bool) -> None:
    for entry in report["runs"]:
        key = "points" if all_points else "frontier"
        rows = [r for chip in entry["chips"] for r in chip[key]]
        counted = sum(len(chip["points"]) for chip in entry["chips"])
        print(render(rows, _columns(rows), f"{entry['title']}: {'every point' if all_points else 'Pareto frontier'}"
                                           f" ({counted} points evaluated)"))
        fixed = entry.get("at_interactivity")
        if fixed:
            picked = [dict(r["point"], interpolated=r["interpolated_tokens_per_s_chip"]) for r in fixed["chips"]
                      if r["point"]]
            missing = [r["chip"] for r in fixed["chips"] if not r["point"]]
            columns = _columns(picked) + [("interp. tok/s/chip", lambda r: si(r["interpolated"]))]
            print()
            print(render(picked, columns, f"at {fixed['tokens_per_s_user']:g} tok/s per user: {fixed['method']}"))
            if missing:
                print(footnote(f"no frontier point reaches {fixed['tokens_per_s_user']:g} tok/s per user on: "
                               f"{', '.join(missing)}"))
        print()
    if report["by_osl"]:
        rows = report["by_osl"]
        print(render(rows, [
            ("chip", lambda r: r["chip"]), ("osl", lambda r: r["osl"]),
            ("max users", lambda r: f"{r['max_concurrency_fewest_chips']} on {r['fewest_chips_split']}"),
            ("max users (any split)", lambda r: r["max_concurrency_any_split"]),
            ("peak tok/s/chip", lambda r: si(r["peak"]["tokens_per_s_chip"])),
            ("at", lambda r: f"{r['peak']['split']} x{r['peak']['concurrency']}"),
            ("$/query at peak", lambda r: _money(r["peak"].get("cost_per_query"))),
            ("J/query at peak", lambda r: si(r["peak"]["joules_per_token"] * r["osl"], "J")
             if "joules_per_token" in r["peak"] else "-"),
        ], "by output length"))
    if report["png"]:
        print(footnote(f"wrote {report['png']}"))
