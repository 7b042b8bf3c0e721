"""How fast ``accelsim frontier`` sweeps: Llama-3-70B (fp8 weights, 1024 in / 1024 out) on h100-sxm, b200 and
groq-lpu, every split that fits x a concurrency ladder of 5 rungs per doubling (over 1,000 points).

Prints each chip's points, frontier and extremes and the sweep's time; writes benchmarks/results/frontier.json
(every point, the frontier marked) and benchmarks/results/frontier.png.  Run: ``python -m benchmarks.frontier``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

CHIPS = ("h100-sxm", "b200", "groq-lpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points-per-octave", type=int, default=5)
    parser.add_argument("--at-interactivity", type=float, default=50.0)
    args = parser.parse_args()
    from accelsim.chips import load_chip
    from accelsim.models.config import load_config
    from accelsim.report.frontier_plot import frontier_png
    from accelsim.report.table import plain, render, si
    from accelsim.serving.frontier import Workload, planned_points, sweep
    from accelsim.serving.pareto import at_interactivity
    from benchmarks.common import RESULTS, environment

    config, chips = load_config("llama-3-70b"), [load_chip(n) for n in CHIPS]
    workload = Workload(config, 1024, 1024, "fp8")
    planned = planned_points(workload, chips, args.points_per_octave)
    start = time.perf_counter()
    sweeps, times = [], []
    for chip in chips:
        began = time.perf_counter()
        sweeps.append(sweep(workload, chip, args.points_per_octave))
        times.append(time.perf_counter() - began)
        print(f"  {chip.name}: {len(sweeps[-1].points)} points in {time.perf_counter() - began:.2f} s",
              file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    ratios = _traced_ratios(workload, chips, sweeps, times)
    rows = []
    for result in sweeps:
        front, read = result.frontier, at_interactivity(result.frontier, args.at_interactivity)
        rows.append({"chip": result.chip, "points": len(result.points), "skipped": len(result.skipped),
                     "frontier": len(front), "best_tokens_per_s_chip": front[0].tokens_per_s_chip if front else None,
                     "best_tokens_per_s_user": front[-1].tokens_per_s_user if front else None,
                     "at_interactivity": read.point.to_dict() if read.point else None,
                     "interpolated_tokens_per_s_chip": read.interpolated_tokens_per_s_chip})
    total = sum(r["points"] for r in rows)
    print(render(rows, [
        ("chip", lambda r: r["chip"]), ("points", lambda r: r["points"]), ("frontier", lambda r: r["frontier"]),
        ("max tok/s/chip", lambda r: si(r["best_tokens_per_s_chip"])),
        ("max tok/s/user", lambda r: si(r["best_tokens_per_s_user"])),
        (f"tok/s/chip at >= {args.at_interactivity:g} tok/s/user",
         lambda r: "-" if r["at_interactivity"] is None else
         f"{si(r['at_interactivity']['tokens_per_s_chip'])} ({r['at_interactivity']['split']} "
         f"x{r['at_interactivity']['concurrency']})"),
    ], title=f"llama-3-70b fp8, 1024 in / 1024 out: {total} points (of {planned} planned) in {seconds:.2f} s"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = frontier_png(sweeps, RESULTS / "frontier.png", "llama-3-70b, fp8 weights, 1024 in / 1024 out",
                       args.at_interactivity)
    path = RESULTS / "frontier.json"
    path.write_text(json.dumps(plain({"environment": environment(), "seconds": seconds, "points": total,
                                      "points_per_octave": args.points_per_octave, "ratios": ratios,
                                      "ratios_note": "per chip: the sweep's mean time per point / the time of "
                                                     "cost_run (traced afresh) on two of its frontier points, "
                                                     "measured in this run", "summary": rows,
                                      "chips": [s.to_dict() for s in sweeps]}), indent=2))
    print(f"wrote {path} and {png}")


def _traced_ratios(workload, chips, sweeps, times) -> dict[str, float]:
    """Each chip's mean sweep time per point over what ``cost_run`` takes for two of its frontier points."""
    from accelsim.models.capacity import Split
    from accelsim.serving.pricing import price_point_traced

    ratios = {}
    for chip, result, seconds in zip(chips, sweeps, times):
        front = result.frontier
        if not front:
            continue
        sample = [front[0], front[len(front) // 2]]
        began = time.perf_counter()
        for point in sample:
            price_point_traced(workload.config, chip, Split.parse(point.split) if point.split != "1 chip" else Split(),
                               point.concurrency, workload.isl, workload.osl, workload.weight_dtype, workload.kv_dtype,
                               workload.low_precision_compute)
        traced = (time.perf_counter() - began) / len(sample)
        ratios[f"{chip.name} sweep point / traced point"] = seconds / max(len(result.points), 1) / traced
    return ratios


if __name__ == "__main__":
    main()
