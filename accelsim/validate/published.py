"""``accelsim validate --published``: our estimate against public serving measurements, row by row.

The rows live in ``accelsim/validate/published.toml`` (each with its source and the figure as quoted;
see ``PUBLISHED.md``). They validate the model and never tune it: no chip file figure comes from them.
A row is priced as one ``estimate`` of one model replica (``tp`` chips, else ``chips / replicas``) at the
row's batch or concurrency (1 where the source states none, said so in the output). Maximum-throughput
figures (MLPerf Offline and Server, "infinite rate" runs) and the latencies measured at that load (MLPerf
Server TTFT and TPOT) come from the serving frontier's search over concurrency and splits of the row's
chips per replica (``accelsim.serving.frontier.max_throughput``), within the row's TTFT/TPOT limits; a
Server row's TTFT adds the mean wait of a randomly arriving query for the running iteration to end
(``accelsim.serving.point.arrival_wait_s``: MLPerf Server's load generator issues Poisson arrivals).

A measured system runs at its achieved rates, not its datasheet peaks, so every row is priced on the chip's
sustained view (``accelsim.chips.sustained``): the ``[sustained]`` FLOP/s and bandwidth its chip file gives
from public microbenchmarks, peaks for every figure it does not give. Each row's note says which were used.
"""

from __future__ import annotations

import functools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from accelsim.chips import load_chip
from accelsim.chips.spec import Chip
from accelsim.chips.sustained import sustained_figures, sustained_view
from accelsim.errors import AccelsimError

PUBLISHED = Path(__file__).with_name("published.toml")
QUICK_IDS = ("cerebras-llama31-8b-launch", "groq-llama2-70b-300tps-claim", "neuron-llama33-70b-trn2-bf16-tpot",
             "trtllm-llama31-8b-h100-tp1-fp8-1000-1000")  # the last: a maximum-throughput search
LOW_PRECISION = {"fp8": "fp8", "int8": "int8", "fp4": "fp4"}  # W8A8-style compute: weights and activations


@dataclass(frozen=True)
class Comparison:
    """One row: what was measured, what we predict, and our binding limit (or why it was not priced)."""

    id: str
    model: str
    chip: str
    chips: int  # 0: not stated by the source
    metric: str
    measured: float
    predicted: float | None
    binding_limit: str
    note: str
    source: str

    @property
    def ratio(self) -> float | None:
        return self.predicted / self.measured if self.predicted is not None else None


def load_rows(path: Path = PUBLISHED) -> list[dict[str, Any]]:
    """The published rows, checked for the fields pricing needs."""
    try:
        rows = tomllib.loads(path.read_text(encoding="utf-8")).get("row", [])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AccelsimError(f"published measurements {path}: {exc}") from None
    for row in rows:
        for field in ("id", "model", "chip", "metric", "value", "source"):
            if field not in row:
                raise AccelsimError(f"published measurements {path}: row {row.get('id', '?')} has no '{field}'")
    return rows


def _replica_chips(row: dict[str, Any]) -> int | None:
    """Chips of one model replica: chips / replicas (a row's ``tp`` may count cores, not chips), else its
    tensor-parallel degree; None when the source states neither (then as few as hold the model)."""
    if "chips" in row:
        return max(1, int(row["chips"]) // int(row.get("replicas", 1)))
    return int(row["tp"]) if "tp" in row else None


@dataclass(frozen=True)
class _Request:
    """What a row asks to price: weight dtype, whether matmuls multiply in it (W8A8-style compute, for a
    low ``precision``) or widen it to bf16 (a row's ``weight_only`` storage dtype), KV dtype and lengths."""

    weights: str
    kv_dtype: str
    input_len: int
    output_len: int
    low_precision_compute: bool = False

    @classmethod
    def of(cls, row: dict[str, Any]) -> "_Request":
        lengths = (int(row.get("input_len") or row.get("input_len_max") or 1024), max(2, int(row.get("output_len") or 128)))
        if "weight_only" in row:
            return cls(str(row["weight_only"]), str(row.get("kv_dtype", "bf16")), *lengths)
        weights = LOW_PRECISION.get(str(row.get("precision", "bf16")).lower(), "bf16")
        return cls(weights, str(row.get("kv_dtype", "bf16")), *lengths, low_precision_compute=weights != "bf16")


@functools.lru_cache(maxsize=None)
def _measured_chip(name: str) -> tuple[Chip, str]:
    """The chip ``name`` as it runs under load, and a note naming the sustained figures used (peaks elsewhere);
    one view per chip name, so that rows on the same chip share its memoised plans."""
    chip = load_chip(name)
    used = sustained_figures(chip)
    return sustained_view(chip), (f"sustained {', '.join(used)}" if used else "peak figures (no [sustained])")


def _replicas(row: dict[str, Any], per_replica: int) -> int:
    return int(row.get("replicas", max(1, int(row.get("chips", per_replica)) // per_replica)))


def compare_row(row: dict[str, Any]) -> Comparison:
    """Price one published row (see the module docstring for how)."""
    from accelsim.models.estimate import run_estimate

    base = dict(id=row["id"], model=row["model"], chip=row["chip"], chips=int(row.get("chips", 0)), metric=row["metric"],
                measured=float(row["value"]), source=row["source"])
    if row.get("needs_sweep") or (row.get("scenario") == "server" and row["metric"] in ("ttft_s", "tpot_s")):
        return _compare_at_max_throughput(row, base)
    batch = int(row.get("batch") or row.get("concurrency") or 1)
    notes = [] if ("batch" in row or "concurrency" in row) else ["no batch stated: priced at batch 1"]
    ask = _Request.of(row)
    if row.get("speculative"):
        notes.append("measured with speculative decoding; priced without")
    try:
        chip, rates = _measured_chip(str(row["chip"]))
        result = run_estimate(row["model"], [chip], batch=batch, prompt_len=ask.input_len,
                              gen_len=ask.output_len, weights=ask.weights, kv_dtype=ask.kv_dtype,
                              num_chips=_replica_chips(row), low_precision_compute=ask.low_precision_compute)
    except AccelsimError as exc:
        return Comparison(**base, predicted=None, binding_limit="-", note=f"not priced: {exc}")
    run = result.runs[0]
    per_replica = _replica_chips(row) or run.capacity.chips
    replicas = _replicas(row, per_replica)
    predicted = {"tokens_per_s_user": run.tokens_per_s_user, "tokens_per_s_total": run.tokens_per_s_aggregate * replicas,
                 "ttft_s": run.ttft_s, "tpot_s": run.tpot_s}.get(row["metric"])
    if predicted is None:
        return Comparison(**base, predicted=None, binding_limit=run.binding_limit,
                          note=f"metric {row['metric']} is not one we predict")
    notes.append(f"batch {batch}, {ask.input_len} in / {ask.output_len} out, {per_replica} chip(s) per replica, "
                 f"{result.compute}, {rates}")
    return Comparison(**base, predicted=float(predicted), binding_limit=run.binding_limit, note="; ".join(notes))


def _compare_at_max_throughput(row: dict[str, Any], base: dict[str, Any]) -> Comparison:
    """A maximum-throughput row: the frontier's best total tok/s (or that point's latency) per replica."""
    from accelsim.models.config import load_config
    from accelsim.serving.frontier import max_throughput
    from accelsim.serving.point import arrival_wait_s

    ask = _Request.of(row)
    per_replica = _replica_chips(row) or 1
    limits = {key: float(row[key]) for key in ("ttft_limit_s", "tpot_limit_s") if key in row}
    try:
        chip, rates = _measured_chip(str(row["chip"]))
        point = max_throughput(load_config(row["model"]), chip, per_replica, ask.input_len,
                               ask.output_len, ask.weights, ask.kv_dtype, low_precision_compute=ask.low_precision_compute,
                               **limits)
    except AccelsimError as exc:
        return Comparison(**base, predicted=None, binding_limit="-", note=f"not priced: {exc}")
    if point is None:
        return Comparison(**base, predicted=None, binding_limit="-",
                          note=f"no configuration of {per_replica} chip(s) meets the limits {limits}")
    replicas = _replicas(row, per_replica)
    # MLPerf Server issues queries at Poisson-distributed times: each waits for the running iteration to end.
    wait = arrival_wait_s(point) if row.get("scenario") == "server" else 0.0
    predicted = {"tokens_per_s_total": point.tokens_per_s_total * replicas, "tokens_per_s_user": point.tokens_per_s_user,
                 "ttft_s": point.ttft_s + wait, "tpot_s": point.tpot_s}.get(row["metric"])
    if predicted is None:
        return Comparison(**base, predicted=None, binding_limit=point.binding_limit,
                          note=f"metric {row['metric']} is not one we predict")
    note = (f"max throughput over concurrency: {point.split} at {point.concurrency} in flight, {ask.input_len} in / "
            f"{ask.output_len} out, x {replicas} replica(s), {ask.weights} "
            f"{'compute' if ask.low_precision_compute else 'weights (bf16 compute)'}, {ask.kv_dtype} KV"
            + (f", within {limits}" if limits else "") + f", {rates}")
    return Comparison(**base, predicted=float(predicted), binding_limit=point.binding_limit, note=note)


def compare_published(quick: bool = False, progress: Callable[[str], None] = lambda m: None,
                      path: Path = PUBLISHED) -> list[Comparison]:
    rows = load_rows(path)
    if quick:
        rows = [r for r in rows if r["id"] in QUICK_IDS]
    out = []
    for row in rows:
        out.append(compare_row(row))
        shown = out[-1]
        progress(f"  {shown.id}: measured {shown.measured:.4g}, predicted "
                 f"{'-' if shown.predicted is None else f'{shown.predicted:.4g}'}")
    return out


def median_error(comparisons: list[Comparison]) -> float | None:
    """Median of |predicted / measured - 1| over the priced rows."""
    errors = sorted(abs(c.ratio - 1) for c in comparisons if c.ratio is not None)
    if not errors:
        return None
    mid = len(errors) // 2
    return errors[mid] if len(errors) % 2 else (errors[mid - 1] + errors[mid]) / 2


def write_published(comparisons: list[Comparison], folder: Path) -> tuple[Path, Path]:
    """JSON of every row and a PNG of predicted against measured (log-log, with the 1.5x band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    json_path, png_path = folder / "validate-published.json", folder / "validate-published.png"
    rows = [{**c.__dict__, "ratio": c.ratio} for c in comparisons]
    json_path.write_text(json.dumps({"median_abs_error": median_error(comparisons), "rows": rows}, indent=2,
                                    allow_nan=False))
    priced = [c for c in comparisons if c.ratio is not None and c.predicted > 0]
    fig, ax = plt.subplots(figsize=(7, 6))
    for metric in sorted({c.metric for c in priced}):
        group = [c for c in priced if c.metric == metric]
        ax.scatter([c.measured for c in group], [c.predicted for c in group], label=metric, s=40)
        for c in group:
            ax.annotate(c.id, (c.measured, c.predicted), fontsize=6, alpha=0.7)
    if priced:
        lo = min(min(c.measured, c.predicted) for c in priced) / 2
        hi = max(max(c.measured, c.predicted) for c in priced) * 2
        line = [lo, hi]
        ax.plot(line, line, "k-", lw=1)
        ax.fill_between(line, [v / 1.5 for v in line], [v * 1.5 for v in line], color="grey", alpha=0.15,
                        label="within 1.5x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("published measurement")
    ax.set_ylabel("accelsim prediction")
    err = median_error(comparisons)
    ax.set_title("accelsim vs published serving measurements"
                 + ("" if err is None else f" (median |pred/meas - 1| = {err:.0%})"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return json_path, png_path
