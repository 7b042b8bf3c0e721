"""Compare measured with predicted times: the arithmetic, the flags, the summary and the JSON schema.

A case is "bound" (and enters the median) when its predicted time is at least ``cutoff_s``: below
that, dispatch and launch overheads the model does not describe dominate. A case misses when
|predicted / measured - 1| exceeds ``threshold``; every miss carries the reason the model gives.
Cases of our kernels in Pallas interpret mode (impl ``"interpret"``) are reported apart: they have their own
median and do not enter the overall one, which is over what the host runs by default.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "accelsim.validate/1"
CUTOFF_S = 2e-3
THRESHOLD = 0.15
CASE_KEYS = ("name", "op", "impl", "measured_s", "predicted_s", "ratio", "error", "bound", "flops",
             "main_bytes", "grid_steps", "included", "miss", "reason")


@dataclass
class CaseResult:
    name: str
    op: str
    impl: str           # "ours" (our kernels, compiled), "interpret" (ours in interpret mode) or "xla" (XLA's ops)
    measured_s: float
    predicted_s: float
    bound: str
    flops: float
    main_bytes: float
    grid_steps: int
    ratio: float = 0.0  # predicted / measured
    error: float = 0.0  # ratio - 1
    included: bool = False
    miss: bool = False
    reason: str = ""


def compare(result: CaseResult, cutoff_s: float = CUTOFF_S, threshold: float = THRESHOLD,
            context: dict[str, Any] | None = None) -> CaseResult:
    """Fill in ratio, error, whether the case counts, whether it misses, and why."""
    result.ratio = result.predicted_s / result.measured_s if result.measured_s > 0 else float("inf")
    result.error = result.ratio - 1.0
    result.included = result.predicted_s >= cutoff_s
    result.miss = abs(result.error) > threshold
    result.reason = explain(result, cutoff_s, context or {})
    return result


def explain(result: CaseResult, cutoff_s: float, context: dict[str, Any]) -> str:
    """The likely cause of a gap, from what the case is and which way it misses."""
    if not result.included:
        return f"below the {cutoff_s * 1e3:.0f} ms cut-off: dispatch and launch overheads dominate"
    if not result.miss:
        return "within tolerance"
    slower = result.measured_s > result.predicted_s
    llc = context.get("llc_bytes", 0)
    if result.op == "attention" and slower and result.bound != "step overhead":
        return ("the blocks' softmax elementwise work (masks, running max and sum, rescaling) runs on the "
                "vector units and is modelled only through its exponentials")
    if result.op == "model_decode" and not slower:
        return ("weights are read at the main-memory figure, which includes first-touch page faults of fresh "
                "outputs; resident weights are read faster")
    if result.impl in ("ours", "interpret") and result.grid_steps > 1:
        form, kernel = (("interpret-mode", "a one-input elementwise kernel") if result.impl == "interpret" else
                        ("compiled", "a one-input summing kernel"))
        return (f"{form} grid steps cost {'more' if slower else 'less'} than the calibrated per-step cost "
                f"({result.grid_steps} steps; it was fitted on {kernel})")
    if result.bound == "compute" and slower:
        return "XLA:CPU does not reach its calibrated peak at this shape (the peak is its best square matmul)"
    if result.bound == "compute" and not slower:
        return "XLA:CPU beats the calibrated peak here (the peak came from a few square sizes)"
    if slower:
        return "memory-bound, slower than the stream bandwidth: unfused or strided accesses the model counts once"
    if llc and result.main_bytes <= 2 * llc:
        return f"cache effects: the {result.main_bytes / 1e6:.0f} MB working set is served from the last-level cache"
    return "faster than the model's byte count: XLA fuses ops that the model counts unfused"


def summarise(results: list[CaseResult], threshold: float = THRESHOLD) -> dict[str, Any]:
    """Median |error| over the bound cases, per implementation and overall (interpret mode apart)."""
    def median_abs(rows):
        return statistics.median(abs(r.error) for r in rows) if rows else None

    included = [r for r in results if r.included]
    default = [r for r in included if r.impl != "interpret"]
    out = {"cases": len(results), "bound_cases": len(default),
           "median_abs_error": median_abs(default), "threshold": threshold}
    for impl in sorted({r.impl for r in results}):
        out[f"median_abs_error_{impl}"] = median_abs([r for r in included if r.impl == impl])
    out["goal_met"] = out["median_abs_error"] is not None and out["median_abs_error"] <= threshold
    out["misses"] = [r.name + f" [{r.impl}]" for r in default if r.miss]
    return out


def report(results: list[CaseResult], chip: str, environment: dict, cutoff_s: float = CUTOFF_S,
           threshold: float = THRESHOLD, crosschecks: list[dict] | None = None) -> dict[str, Any]:
    """The JSON document `accelsim validate` writes (schema ``SCHEMA``)."""
    return {"schema": SCHEMA, "chip": chip, "environment": environment, "cutoff_s": cutoff_s,
            "threshold": threshold, "cases": [asdict(r) for r in results],
            "summary": summarise(results, threshold), "crosschecks": crosschecks or []}


@dataclass
class Suite:
    """What to run: (name, op, impl, fn, args, timed) per case; ``timed`` (when not None) is what is timed in
    place of ``fn(*args)``, the same work with state threaded from call to call."""

    cases: list[tuple] = field(default_factory=list)

    def add(self, name: str, op: str, impl: str, fn, *args, timed=None) -> None:
        self.cases.append((name, op, impl, fn, args, timed))
