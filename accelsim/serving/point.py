"""One serving configuration priced: a ``ServingPoint`` (latencies, the three throughputs, chips, split, limit).

Throughput counts a request whole: ``concurrency`` requests of ``osl`` output tokens each finish in
TTFT + (osl - 1) x TPOT, so prefill's chip time is paid for. Per-user speed is the decode rate 1 / TPOT
(InferenceMAX's "interactivity"); with one output token there is no decode and it is 1 / TTFT.

``from_run`` serves the point by continuous (in-flight) batching, as TensorRT-LLM, vLLM and SGLang do:
a new request's prompt is prefilled inside one iteration of the running batch, not with the whole batch
(iteration-level scheduling: Yu et al., "Orca", OSDI 2022; TensorRT-LLM's in-flight batching mixes context
and generation requests in one step). Its first token comes at the end of that iteration, which also
decodes the B - 1 others: TTFT = TTFT_B / B (its share of a batch prefill, prefill being bound by compute
or the weights it reads once per chunk) + TPOT_B (with B = 1 there are no others and TTFT = TTFT_1). The
other requests' prefills slow every decode step, so a user sees TPOT = TPOT_B + (TTFT_B - TTFT_B / B) /
(osl - 1). A request then holds its slot for TTFT_B + osl x TPOT_B: osl iterations, the steady state's
B x osl / (TTFT_B + osl x TPOT_B) tokens per second. A request that arrives at a random moment (an open-loop
load, MLPerf Server's Poisson arrivals) also waits for the running iteration to end: ``arrival_wait_s``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServingPoint:
    """A replica of ``chips`` chips (``split``) serving ``concurrency`` requests of ``isl`` in, ``osl`` out.

    ``chips`` is a float only for disaggregated serving, where the prefill pool's share is amortised, and
    ``slot_s`` (how long a request holds one of the replica's ``concurrency`` slots) is then shorter than
    ``request_s``, prefill running elsewhere; by default a slot is held for the whole request.
    ``extra`` holds what a variant adds (speculative decoding's step, disaggregation's pools)."""

    chip: str
    split: str
    chips: float
    concurrency: int
    isl: int
    osl: int
    ttft_s: float
    tpot_s: float | None
    binding_limit: str
    slot_s: float | None = None
    extra: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def request_s(self) -> float:
        """Time from arrival to the last output token."""
        return self.ttft_s + (self.osl - 1) * (self.tpot_s or 0.0)

    @property
    def tokens_per_s_user(self) -> float:
        step = self.tpot_s if self.tpot_s else self.ttft_s
        return 1.0 / step if step > 0 else 0.0

    @property
    def tokens_per_s_total(self) -> float:
        held = self.request_s if self.slot_s is None else self.slot_s
        return self.concurrency * self.osl / held if held > 0 else 0.0

    @property
    def tokens_per_s_chip(self) -> float:
        return self.tokens_per_s_total / self.chips

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out.update(dict(self.extra))
        out.update(request_s=self.request_s, tokens_per_s_user=self.tokens_per_s_user,
                   tokens_per_s_total=self.tokens_per_s_total, tokens_per_s_chip=self.tokens_per_s_chip)
        return out


def arrival_wait_s(point: ServingPoint) -> float:
    """Mean wait of a request arriving at a random moment for the running iteration to end: half an
    iteration (TPOT) when other requests are running, nothing on an idle replica."""
    return 0.5 * point.tpot_s if point.tpot_s and point.concurrency > 1 else 0.0


def from_run(run: Any, split_label: str, chips: float, isl: int, osl: int) -> ServingPoint:
    """The point of one ``RunCost`` (``accelsim.serving.pricing.price_point``'s answer, the batch's prefill
    and decode steps) served by continuous batching (see the module docstring)."""
    batch_ttft = float(run.ttft_s)
    if run.tpot_s is None or osl < 2:
        return ServingPoint(run.chip, split_label, chips, run.batch, isl, osl, batch_ttft, None, run.binding_limit)
    ttft = batch_ttft / run.batch + (float(run.tpot_s) if run.batch > 1 else 0.0)
    tpot = float(run.tpot_s) + (batch_ttft - batch_ttft / run.batch) / (osl - 1)
    return ServingPoint(run.chip, split_label, chips, run.batch, isl, osl, ttft, tpot, run.binding_limit)
