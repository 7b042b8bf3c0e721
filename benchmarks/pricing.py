"""Seconds per serving point: ``price_point`` against the old path, ``cost_run`` from a cold start, on Llama-3-70B.

Cases (fp8 weights, 1024 in / 1024 out tokens):
  - planner: the phase's ten matmul plans, the planner against its reference path (the search as it was:
    footprints from BlockSpecs, every cache miss from the general stream model);
  - cold: one point nothing has been priced for (both paths plan, trace and price everything; the old path
    at batch 33, as JAX would otherwise answer its trace of batch 32 from its own cache);
  - sweep: a frontier's pattern on one chip and tensor degree, concurrencies x pipeline depths, priced in
    order (the old path from a cold start at every point, as it had nothing to remember);
  - repeat: a point priced again.
The new path runs first at each point, so JAX's own trace caches favour the old one. Every answer of
``price_point`` is checked against ``cost_run``'s. Writes benchmarks/results/pricing.json
(``ratios``: case -> new / old seconds per point).  Run: ``python -m benchmarks.pricing [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from accelsim.chips import load_chip
from accelsim.models.capacity import Split
from accelsim.models.config import load_config
from accelsim.models.sharding import local_config
from accelsim.serving.pricing import price_point, price_point_traced
from accelsim.tiling.matmul import plan_matmul
from accelsim.tiling.plan import ChipMemo
from benchmarks.common import RESULTS, environment

ISL = OSL = 1024


def _cold(price, *point):
    ChipMemo.forget_all()
    start = time.perf_counter()
    run = price(*point)
    return run, time.perf_counter() - start


def _matmul_shapes(config, tensor: int, batch: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of each projection of one chip's share, prefill (batch x prompt rows) and decode (batch rows)."""
    c = local_config(config, tensor)
    shapes = []
    for rows in (batch * ISL, batch):
        shapes += [(rows, c.hidden_size, c.q_size + 2 * c.kv_size), (rows, c.q_size, c.hidden_size),
                   (rows, c.hidden_size, 2 * c.intermediate_size), (rows, c.intermediate_size, c.hidden_size),
                   (batch, c.hidden_size, c.vocab_size)]
    return shapes


def _plans(chip, shapes, reference: bool) -> float:
    ChipMemo.forget_all()
    start = time.perf_counter()
    for m, k, n in shapes:
        plan_matmul(m, k, n, chip, "bf16", b_dtype="fp8", reference=reference)
    return time.perf_counter() - start


def _agree(new, old) -> None:
    if not (math.isclose(new.ttft_s, old.ttft_s, rel_tol=1e-12) and new.binding_limit == old.binding_limit
            and (new.tpot_s == old.tpot_s or math.isclose(new.tpot_s, old.tpot_s, rel_tol=1e-12))):
        raise SystemExit(f"price_point and cost_run disagree at batch {new.batch}: {new.ttft_s} vs {old.ttft_s}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chip", default="h100-sxm")
    parser.add_argument("--tensor", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="three concurrencies instead of six")
    args = parser.parse_args(argv)
    config, chip = load_config("llama-3-70b"), load_chip(args.chip)
    batches = (1, 4, 16) if args.quick else (1, 2, 4, 8, 16, 32)
    sweep = [(Split(args.tensor, p), b) for p in (1, 2, 4) for b in batches]
    rows, per_point = [], {}

    shapes = _matmul_shapes(config, args.tensor, 32)
    per_point["planner"] = (_plans(chip, shapes, False), _plans(chip, shapes, True))

    _cold(price_point_traced, config, chip, Split(args.tensor), 31, ISL, OSL, "fp8")  # imports, first compiles
    point = (config, chip, Split(args.tensor), 32, ISL, OSL, "fp8")
    new, new_s = _cold(price_point, *point)
    start = time.perf_counter()
    again = price_point(*point)
    repeat_s = time.perf_counter() - start
    _, old_s = _cold(price_point_traced, config, chip, Split(args.tensor), 33, ISL, OSL, "fp8")
    old = price_point_traced(*point)
    _agree(new, old)
    _agree(again, old)
    per_point["cold"] = (new_s, old_s)
    per_point["repeat"] = (repeat_s, old_s)

    ChipMemo.forget_all()
    new_runs, start = [], time.perf_counter()
    for split, batch in sweep:
        new_runs.append(price_point(config, chip, split, batch, ISL, OSL, "fp8"))
    new_total = time.perf_counter() - start
    old_total = 0.0
    for (split, batch), fast in zip(sweep, new_runs):
        old, seconds = _cold(price_point_traced, config, chip, split, batch, ISL, OSL, "fp8")
        _agree(fast, old)
        old_total += seconds
        rows.append({"split": split.label, "batch": batch, "old_s": seconds, "ttft_s": old.ttft_s,
                     "tpot_s": old.tpot_s, "limit": old.binding_limit})
    per_point["sweep"] = (new_total / len(sweep), old_total / len(sweep))

    print(f"llama-3-70b fp8 on {chip.name}, TP{args.tensor}, {ISL} in / {OSL} out: seconds per point "
          "(planner: the ten matmul plans of batch 32)")
    print(f"{'case':<8} {'new':>10} {'old (cost_run)':>15} {'new/old':>9}")
    for case, (new_s, old_s) in per_point.items():
        print(f"{case:<8} {new_s:>10.4f} {old_s:>15.4f} {new_s / old_s:>9.4f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "pricing.json"
    path.write_text(json.dumps({
        "environment": environment(), "model": "llama-3-70b", "chip": chip.name, "tensor": args.tensor,
        "isl": ISL, "osl": OSL, "weights": "fp8", "points_in_sweep": len(sweep),
        "seconds_per_point": {case: {"new": n, "old": o} for case, (n, o) in per_point.items()},
        "ratios": {case: n / o for case, (n, o) in per_point.items()}, "rows": rows}, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
