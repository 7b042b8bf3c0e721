"""The serving sweep: every parallel split that fits a chip x concurrencies up to capacity, priced, then its frontier.

Each point is one ``accelsim.serving.pricing.price_point`` call (never re-priced here). Concurrencies are
a geometric ladder (``points_per_octave`` rungs per doubling) from 1 to the most sequences whose KV cache
fits beside the weights, capped at ``MAX_CONCURRENCY``. ``max_throughput`` is the best total tok/s for a
given chip count, optionally under TTFT and TPOT limits (MLPerf server rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from accelsim.chips import Chip
from accelsim.errors import AccelsimError, TooLarge
from accelsim.models.capacity import Split, candidate_splits, default_split, max_concurrency, scale_up_chips
from accelsim.models.config import LlamaConfig
from accelsim.serving.pareto import pareto
from accelsim.serving.point import ServingPoint, from_run

MAX_CONCURRENCY = 4096  # beyond a few thousand live requests per replica no serving engine schedules a batch
Progress = Callable[[int, int, str], None]  # (points done, points in this sweep, what was just priced)


@dataclass(frozen=True)
class Workload:
    """What is served: the model, input and output lengths, dtypes, and the largest replica to consider.

    ``pricer`` prices one point (default ``accelsim.serving.pricing.price_point``; tests pass their own)."""

    config: LlamaConfig
    isl: int
    osl: int
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    low_precision_compute: bool = False
    max_chips: int | None = None
    pricer: Callable[..., Any] | None = None

    @property
    def context(self) -> int:
        return self.isl + self.osl

    def chip_limit(self, chip: Chip) -> int:
        """``max_chips``, else the most any split could use (the scale-up domain x one stage per layer)."""
        return self.max_chips or scale_up_chips(chip) * self.config.num_layers

    def price(self, chip: Chip, split: Split, batch: int, config: LlamaConfig | None = None,
              isl: int | None = None, osl: int | None = None) -> Any:
        """``price_point`` of this workload (or of ``config`` / other lengths: a draft, a verification)."""
        pricer = self.pricer
        if pricer is None:
            from accelsim.serving.pricing import price_point as pricer  # on first use: importing it loads jax
        return pricer(config or self.config, chip, split, batch, isl or self.isl, osl or self.osl,
                      weight_dtype=self.weight_dtype, kv_dtype=self.kv_dtype,
                      low_precision_compute=self.low_precision_compute)


@dataclass
class ChipSweep:
    """Every evaluated point on one chip (or one prefill/decode pairing), its frontier, what was skipped, and
    per split the most concurrent requests priced (what fits, at most ``MAX_CONCURRENCY``)."""

    chip: str
    points: list[ServingPoint] = field(default_factory=list)
    max_concurrency: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)

    @property
    def frontier(self) -> list[ServingPoint]:
        return pareto(self.points)

    def to_dict(self, annotate: Callable[[ServingPoint], dict] = lambda p: p.to_dict()) -> dict[str, Any]:
        on = {id(p) for p in self.frontier}
        return {"chip": self.chip, "max_concurrency": self.max_concurrency, "skipped": self.skipped,
                "frontier": [annotate(p) for p in self.frontier],
                "points": [{**annotate(p), "on_frontier": id(p) in on} for p in self.points]}


def concurrencies(limit: int, points_per_octave: int = 4) -> list[int]:
    """1 .. ``limit`` (capped at ``MAX_CONCURRENCY``): every count below ``points_per_octave``, then
    ``points_per_octave`` evenly spaced counts per doubling, ``limit`` itself included.

    The ladder is closed under doubling (m x 2^e for m from n to 2n - 1), so a pipeline of 2 or 4 stages
    cuts its batches into the very micro-batches a single stage runs, which ``price_point`` remembers."""
    top = min(limit, MAX_CONCURRENCY)
    if top < 1:
        return []
    n = points_per_octave
    rungs, scale = {top, *range(1, min(n, top))}, 1
    while n * scale < top:
        rungs |= {m * scale for m in range(n, 2 * n) if m * scale < top}
        scale *= 2
    return sorted(rungs)


def plan(workload: Workload, chip: Chip, points_per_octave: int = 4,
         chips: int | None = None) -> list[tuple[Split, list[int]]]:
    """(split, concurrencies) to price on ``chip``: every candidate split with its concurrency ladder. With
    ``chips``, only the candidates of exactly that many chips, else ``estimate``'s split of them if it fits."""
    limit = chips if chips is not None else workload.chip_limit(chip)
    splits = candidate_splits(workload.config, chip, limit, workload.context, workload.weight_dtype,
                              workload.kv_dtype)
    if chips is not None:
        exact = [s for s in splits if s.chips == chips]
        fallback = default_split(chips, chip, workload.config.num_layers)
        splits = exact or [fallback]
    out = []
    for split in splits:
        most = max_concurrency(workload.config, chip, split, workload.context, workload.weight_dtype,
                               workload.kv_dtype)
        if most >= 1:
            out.append((split, concurrencies(most, points_per_octave)))
    return out


def sweep(workload: Workload, chip: Chip, points_per_octave: int = 4, progress: Progress | None = None,
          point: Callable[[Workload, Chip, Split, int, Any], ServingPoint | None] | None = None,
          chips: int | None = None) -> ChipSweep:
    """Price every (split, concurrency) of ``plan`` on ``chip``. ``point`` turns a priced run into a point
    (default: the plain one; speculative decoding passes its own, None where it does not fit). A point
    past a modelling limit (``TooLarge``) or that ``point`` refuses is skipped and listed with its reason."""
    todo = plan(workload, chip, points_per_octave, chips)
    if not todo:
        many = f"exactly {chips}" if chips else f"at most {workload.chip_limit(chip)}"
        raise AccelsimError(f"{workload.config.name} fits no split of {many} {chip.name} chips at "
                            f"{workload.context} tokens of context (--max-chips?)")
    total, done = sum(len(b) for _, b in todo), 0
    result = ChipSweep(chip.name)
    for split, batches in todo:
        for batch in batches:
            try:
                run = workload.price(chip, split, batch)
                made = point(workload, chip, split, batch, run) if point else from_run(
                    run, split.label, split.chips, workload.isl, workload.osl)
                if made is None:
                    result.skipped.append({"split": split.label, "concurrency": batch,
                                           "reason": "no room beside the draft model"})
                else:
                    result.points.append(made)
            except TooLarge as exc:
                result.skipped.append({"split": split.label, "concurrency": batch, "reason": str(exc)})
            done += 1
            if progress:
                progress(done, total, f"{chip.name} {split.label} x{batch}")
        priced = [p.concurrency for p in result.points if p.split == split.label]
        if priced:
            result.max_concurrency[split.label] = max(priced)
    return result


def planned_points(workload: Workload, chips: Sequence[Chip], points_per_octave: int = 4) -> int:
    """How many points ``sweep`` will price over ``chips`` (for a progress bar)."""
    return sum(len(b) for chip in chips for _, b in plan(workload, chip, points_per_octave))


def within(point: ServingPoint, ttft_limit_s: float | None, tpot_limit_s: float | None) -> bool:
    return ((ttft_limit_s is None or point.ttft_s <= ttft_limit_s)
            and (tpot_limit_s is None or point.tpot_s is None or point.tpot_s <= tpot_limit_s))


def max_throughput(config: LlamaConfig, chip: Chip, chips: int, isl: int, osl: int, weights: str = "bf16",
                   kv_dtype: str = "bf16", low_precision_compute: bool = False, ttft_limit_s: float | None = None,
                   tpot_limit_s: float | None = None, points_per_octave: int = 8,
                   pricer: Callable[..., Any] | None = None) -> ServingPoint | None:
    """The point of most total tok/s over every split of exactly ``chips`` chips and every concurrency,
    among those within the TTFT and TPOT limits (None when no point meets them)."""
    workload = Workload(config, isl, osl, weights, kv_dtype, low_precision_compute, chips, pricer)
    points = sweep(workload, chip, points_per_octave, chips=chips).points
    allowed = [p for p in points if within(p, ttft_limit_s, tpot_limit_s)]
    return max(allowed, key=lambda p: p.tokens_per_s_total, default=None)
