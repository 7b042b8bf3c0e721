"""Measured acceptance of self-speculative drafts of SmolLM2-135M (its first N layers), greedy, on this machine.

The target generates greedily through our kernels; each draft (first N of its 30 layers + final norm + tied
LM head) is run teacher-forced over prompt + continuation (``accelsim.serving.acceptance``). Writes
benchmarks/results/acceptance.json.  Run: ``python -m benchmarks.acceptance [--layers 8 16 24] [--draft-len 4]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[8, 16, 24, 28])
    parser.add_argument("--draft-len", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args()
    from accelsim.report.table import render
    from accelsim.serving.acceptance import PROMPTS, measure
    from benchmarks.common import RESULTS, environment

    start = time.perf_counter()
    results = measure(args.layers, args.draft_len, PROMPTS, args.new_tokens,
                      progress=lambda m: print(m, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - start
    rows = [r.to_dict() for r in results]
    print(render(rows, [
        ("draft layers", lambda r: f"{r['draft_layers']}/{r['target_layers']}"),
        ("positions", lambda r: r["positions"]), ("acceptance", lambda r: f"{r['acceptance']:.3f}"),
        (f"tokens/step k={args.draft_len} (walked)", lambda r: f"{r['tokens_per_step_measured']:.3f}"),
        ("tokens/step (formula)", lambda r: f"{r['tokens_per_step_formula']:.3f}"),
    ], title=f"SmolLM2-135M self-speculative drafts, greedy, {len(PROMPTS)} prompts x {args.new_tokens} new tokens"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "acceptance.json"
    path.write_text(json.dumps({"environment": environment(), "seconds": seconds, "ratios": {},
                                "ratios_note": "not a timing benchmark: it measures draft acceptance, so there is no ours/reference time", "prompts": list(PROMPTS),
                                "new_tokens": args.new_tokens, "rows": rows}, indent=2, default=str))
    print(f"wrote {path} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
