"""How fast and how lean ``accelsim estimate`` is, and whether its throughput behaves as batch grows.

Cases, each run in its own child process so its peak RSS is its own (``os.wait4``):
  - Llama-3.1-405B, fp8 weights, prompt 1024, 256 generated, on every preset;
  - the same at a 130,000-token prompt (Llama-3.1's context is 131,072), on h100-sxm;
  - a 10-trillion-parameter config on every preset;
  - Llama-3-70B fp8 on 8 x h100-sxm over a batch sweep (aggregate tok/s must not fall until capacity binds).
"costing" is the time of the estimate itself (planning, tracing, pricing), imports excluded.
Writes benchmarks/results/estimate-<backend>.json.  Run: ``python -m benchmarks.estimate``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEN_TRILLION = {  # 660 layers x (2.2e9 attention + 1.29e10 MLP) + embeddings = 1.0e13 parameters
    "model_type": "llama", "hidden_size": 32768, "intermediate_size": 131072, "num_hidden_layers": 660,
    "num_attention_heads": 256, "num_key_value_heads": 16, "vocab_size": 128256, "max_position_embeddings": 8192,
    "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
}
BATCHES = (1, 8, 32, 64, 128, 256, 512)

RATIOS_NOTE = "no reference implementation to time beside: estimate's figures are absolute costing times and peak RSS"


def _child(argv: list[str]) -> None:
    """Run one estimate in this process; print its costing time and its JSON on stdout."""
    import contextlib
    import io

    from accelsim.cli import main

    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["estimate", *argv, "--json"])
    costing = time.perf_counter() - start
    print(json.dumps({"rc": code, "costing_s": costing, "result": json.loads(out.getvalue()) if code == 0 else None}))


def _run_measured(argv: list[str]) -> dict:
    """One estimate in a child process: its report, wall time and its own peak RSS (``os.wait4``)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.estimate", "--child", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {"rc": proc.returncode, "error": stderr.strip()[-400:]}
    report["wall_s"] = time.perf_counter() - start
    report["peak_rss_mb"] = usage.ru_maxrss / 1024
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child)
        return
    from accelsim.chips import preset_names
    from accelsim.report.table import render
    from benchmarks.common import write_results

    presets = [n for n in preset_names() if n != "host"]
    every = [arg for name in presets for arg in ("--chip", name)]
    config = Path(tempfile.mkdtemp()) / "ten-trillion.json"
    config.write_text(json.dumps(TEN_TRILLION))
    cases = [
        ("llama-3.1-405b, all presets", ["--model", "llama-3.1-405b", "--prompt-len", "1024", "--gen-len", "256",
                                         "--weights", "fp8", *every]),
        ("llama-3.1-405b, 130k prompt, h100-sxm", ["--model", "llama-3.1-405b", "--prompt-len", "130000",
                                                   "--gen-len", "72", "--weights", "fp8", "--chip", "h100-sxm"]),
        ("10T parameters, all presets", ["--model", str(config), "--prompt-len", "1024", "--gen-len", "64",
                                         "--weights", "fp8", *every]),
    ]
    cases += [(f"llama-3-70b fp8, 8 x h100-sxm, batch {b}",
               ["--model", "llama-3-70b", "--batch", str(b), "--prompt-len", "1024", "--gen-len", "256", "--weights",
                "fp8", "--chips", "8", "--chip", "h100-sxm"]) for b in BATCHES]
    rows = []
    for name, argv in cases:
        report = _run_measured(argv)
        chips = (report.get("result") or {}).get("chips", [])
        rows.append({"case": name, "rc": report.get("rc"), "costing_s": report.get("costing_s"),
                     "wall_s": report["wall_s"], "peak_rss_mb": report["peak_rss_mb"], "chips_costed": len(chips),
                     "tokens_per_s_aggregate": chips[0]["tokens_per_s_aggregate"] if len(chips) == 1 else None,
                     "binding_limit": chips[0]["binding_limit"] if len(chips) == 1 else None,
                     "error": report.get("error")})
        print(f"  {name}: rc {rows[-1]['rc']}, costing {rows[-1]['costing_s'] or float('nan'):.2f} s", file=sys.stderr)
    sweep = [r["tokens_per_s_aggregate"] for r in rows if r["case"].startswith("llama-3-70b")]
    monotone = all(b >= a for a, b in zip(sweep, sweep[1:]) if a is not None and b is not None)
    print(render(rows, [
        ("case", lambda r: r["case"]), ("rc", lambda r: r["rc"]),
        ("costing", lambda r: "-" if r["costing_s"] is None else f"{r['costing_s']:.2f} s"),
        ("peak RSS", lambda r: f"{r['peak_rss_mb']:.0f} MB"),
        ("chips", lambda r: r["chips_costed"]),
        ("tok/s total", lambda r: "-" if r["tokens_per_s_aggregate"] is None else f"{r['tokens_per_s_aggregate']:,.0f}"),
        ("limit", lambda r: r["binding_limit"] or "-"),
    ], title="accelsim estimate: costing time, peak memory, batch sweep"))
    print(f"aggregate tok/s never falls over the batch sweep: {monotone}")
    path = write_results("estimate", rows, ratios={}, ratios_note=RATIOS_NOTE, batch_sweep_monotone=monotone,
                         batches=list(BATCHES))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
