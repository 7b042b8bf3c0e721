"""`accelsim validate [--quick]`: predicted vs measured time on this machine (or its GPU), with cross-checks."""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

from accelsim.chips import load_chip, preset_names
from accelsim.chips.loader import preset_for_device
from accelsim.commands.common import add_json_argument, progress
from accelsim.errors import AccelsimError
from accelsim.files import ensure_writable_dir
from accelsim.report.table import render, to_json
from accelsim.validate.harness import CUTOFF_S, THRESHOLD, compare, report

HELP = "time a suite of ops here and compare with the model's prediction for this machine"
RESULTS = Path("benchmarks/results")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats (under 3 minutes on 2 cores)")
    parser.add_argument("--chip", help="chip to compare against (default: 'host' on CPU, the matching preset on GPU/TPU)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and PNGs")
    parser.add_argument("--no-model", action="store_true", help="skip the SmolLM2 cases")
    parser.add_argument("--no-interpret", action="store_true",
                        help="skip the Pallas interpret-mode cases (on a CPU host; reported apart from the median)")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="use the cached host chip instead of measuring it again first (shared machines drift)")
    parser.add_argument("--published", action="store_true",
                        help="compare estimate with public serving measurements (accelsim/validate/published.toml) "
                             "instead of timing here; with --quick, three rows")
    add_json_argument(parser)


def chip_for_this_machine(name: str | None, calibrate_first: bool = True, quick: bool = False):
    """The chip to validate against: named, the preset matching the accelerator, or the host, measured
    again right before the suite so that both see the machine in the same state."""
    if name:
        return load_chip(name)
    backend = jax.default_backend()
    if backend == "cpu":
        from accelsim.models.session import host_chip

        if calibrate_first:
            from accelsim.chips.calibrate import calibrate

            progress(f"calibrating the host first{' (quick)' if quick else ''}...")
            calibrate(progress=None, quick=quick)
        return host_chip(progress)
    kind = jax.devices()[0].device_kind
    preset = preset_for_device(kind)
    if preset is None:
        raise AccelsimError(f"no preset's device_names match device '{kind}': pass --chip NAME or a chip file")
    return load_chip(preset)


def run(args: argparse.Namespace) -> int:
    from accelsim.report.plots import predicted_vs_measured
    from accelsim.validate.crosscheck import crosscheck
    from accelsim.validate.rooflines import write_rooflines
    from accelsim.validate.suite import build_suite, run_suite
    from accelsim.validate.timing import environment

    ensure_writable_dir(args.out, "--out")  # before minutes of measuring
    if args.published:
        return run_published(args)
    chip = chip_for_this_machine(args.chip, not args.no_calibrate, args.quick)
    dtype = "f32" if jax.default_backend() == "cpu" else "bf16"
    progress(f"validating against chip '{chip.name}' on {jax.default_backend()} ({dtype})...")
    interpret_chip = None
    if chip.architecture == "cpu" and jax.default_backend() == "cpu" and not args.no_interpret:
        from accelsim.chips.host_chip import interpret_host

        progress("measuring Pallas interpret mode's grid-step cost for the interpret-mode cases...")
        interpret_chip = interpret_host(chip)
    suite = build_suite(chip, dtype, quick=args.quick, with_model=not args.no_model, progress=progress,
                        interpret_chip=interpret_chip)
    results = run_suite(suite, chip, repeats=3 if args.quick else 5, progress=progress, interpret_chip=interpret_chip)
    llc = chip.memory[-1].total_capacity_bytes if chip.architecture == "cpu" else 0
    for result in results:
        compare(result, CUTOFF_S, THRESHOLD, {"llc_bytes": llc})
    progress("cross-checking FLOPs and bytes against jax.experimental.roofline and cost_analysis()...")
    checks = crosscheck()
    doc = report(results, chip.name, environment(), CUTOFF_S, THRESHOLD, checks)
    doc["ratios"] = ours_over_xla(results)
    suffix = f"{jax.default_backend()}{'-quick' if args.quick else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"validate-{suffix}.json"
    json_path.write_text(to_json(doc))
    png = predicted_vs_measured(doc["cases"], args.out / f"validate-{suffix}.png",
                                f"accelsim validate on {chip.name}: predicted vs measured", CUTOFF_S)
    roofs = write_rooflines([chip] + [load_chip(n) for n in preset_names() if n != "host" and n != chip.name],
                            args.out / "rooflines")
    if args.json:
        print(to_json(doc))
        return 0
    print(render(doc["cases"], [
        ("case", lambda c: c["name"]), ("impl", lambda c: c["impl"]),
        ("measured", lambda c: f"{c['measured_s'] * 1e3:.2f} ms"), ("predicted", lambda c: f"{c['predicted_s'] * 1e3:.2f} ms"),
        ("pred/meas", lambda c: f"{c['ratio']:.2f}"), ("bound", lambda c: c["bound"]),
        ("counts", lambda c: "yes" if c["included"] else "no"), ("why", lambda c: c["reason"]),
    ], title=f"predicted (chip '{chip.name}') vs measured on this machine"))
    summary = doc["summary"]
    print(f"\nmedian |predicted/measured - 1| over {summary['bound_cases']} bound cases "
          f"(predicted >= {CUTOFF_S * 1e3:.0f} ms; interpret mode apart): "
          + (f"{summary['median_abs_error']:.1%}" if summary["median_abs_error"] is not None else "none")
          + "".join(f"; {k.removeprefix('median_abs_error_')}: {v:.1%}" for k, v in summary.items()
                    if k.startswith("median_abs_error_") and v is not None)
          + f"  (goal <= {THRESHOLD:.0%}: {'met' if summary['goal_met'] else 'NOT met'})")
    print()
    print(render(checks, [
        ("workload", lambda r: r["workload"]), ("FLOPs ours", lambda r: f"{r['flops_ours']:.4g}"),
        ("roofline", lambda r: f"{r['flops_roofline']:.4g}"), ("cost_analysis", lambda r: f"{r['flops_xla_cost_analysis']:.4g}"),
        ("bytes ours", lambda r: f"{r['bytes_ours_unfused']:.4g}"), ("roofline", lambda r: f"{r['bytes_roofline']:.4g}"),
        ("cost_analysis", lambda r: f"{r['bytes_xla_cost_analysis']:.4g}"),
    ], title="cross-check on loop-free f32 workloads (matmul FLOPs agree exactly; bytes explained below)"))
    for r in checks:
        print(f"  {r['workload']}: {r['explanation']}")
    print(f"\nwrote {json_path}, {png} and {len(roofs)} rooflines in {args.out / 'rooflines'}")
    return 0


def ours_over_xla(results) -> dict[str, float]:
    """Per case with both, our kernels' measured time over XLA's (compiled form; lower is better)."""
    xla = {r.name: r.measured_s for r in results if r.impl == "xla"}
    return {r.name: r.measured_s / xla[r.name] for r in results if r.impl == "ours" and xla.get(r.name)}


def run_published(args: argparse.Namespace) -> int:
    """``validate --published``: predicted vs measured per public row, our binding limit, JSON, PNG, median."""
    from accelsim.validate.published import compare_published, median_error, write_published

    comparisons = compare_published(quick=args.quick, progress=progress)
    json_path, png_path = write_published(comparisons, args.out)
    if args.json:
        print(json_path.read_text())
        return 0
    print(render(comparisons, [
        ("row", lambda c: c.id), ("chip", lambda c: c.chip), ("metric", lambda c: c.metric),
        ("measured", lambda c: f"{c.measured:.4g}"),
        ("predicted", lambda c: "-" if c.predicted is None else f"{c.predicted:.4g}"),
        ("pred/meas", lambda c: "-" if c.ratio is None else f"{c.ratio:.2f}"),
        ("our limit", lambda c: c.binding_limit), ("note", lambda c: c.note),
    ], title="accelsim estimate vs published serving measurements (sources in accelsim/validate/PUBLISHED.md)"))
    error = median_error(comparisons)
    priced = sum(c.ratio is not None for c in comparisons)
    print(f"\nmedian |predicted/measured - 1| over {priced} priced rows: "
          + ("none" if error is None else f"{error:.1%}") + f"\nwrote {json_path} and {png_path}")
    return 0
