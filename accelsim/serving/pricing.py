"""One serving point priced: a model on a chip under a parallel split, at a concurrency and request lengths.

``price_point`` answers exactly what ``accelsim.models.costing.cost_run`` answers for that point (the same
traced phases, the same ``compose_run``), but a sweep asks for many points that share their phases: every
pipeline depth whose micro-batch comes out the same, every repeat of a point. The traced and priced phases
(prefill and each decode step, at the micro-batch) are remembered per (model, chip, tensor and expert
degrees, micro-batch, lengths, dtypes), and composing a run from them takes microseconds. The op plans
behind a trace are remembered too (``accelsim.ops.registry.memoised``), so a new micro-batch re-plans only
the shapes it changes. ``price_point_traced`` is the plain ``cost_run`` call, kept as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.chips import Chip
from accelsim.dtypes import canonical_dtype
from accelsim.models.capacity import Split, plan_capacity
from accelsim.models.config import LlamaConfig
from accelsim.models.costing import ModelTracer, PhaseCost, RunCost, compose_run, cost_run, micro_batch, summarise
from accelsim.models.estimate import decode_lengths
from accelsim.tiling.plan import ChipMemo

ACT_DTYPE = "bf16"  # what estimate and the frontier run activations in


@dataclass(frozen=True)
class Phases:
    """A micro-batch's priced prefill and decode steps, and whether its tensor-parallel collectives are records
    of the traced program (else ``compose_run`` adds them by formula)."""

    prefill: PhaseCost
    decode: tuple[PhaseCost, ...]
    sharded: bool


_PHASES = ChipMemo(1 << 12)


def _step_lengths(isl: int, osl: int) -> tuple[int, ...]:
    return tuple(int(l[0]) for l in decode_lengths(isl, osl))


def _cache_len(isl: int, steps: tuple[int, ...]) -> int:
    return max([isl + 1, *steps])


def _phases(config: LlamaConfig, chip: Chip, tensor: int, expert: int, micro: int, isl: int,
            steps: tuple[int, ...], weight_dtype: str, kv_dtype: str, low_precision_compute: bool) -> Phases:
    """Prefill and every decode step of ``micro`` sequences, traced and priced as ``cost_run`` does."""
    tracer = ModelTracer(config, chip, micro, isl, _cache_len(isl, steps), weight_dtype, ACT_DTYPE, kv_dtype,
                         low_precision_compute, tensor, expert)
    prefill = summarise(tracer.prefill_costs(), config.num_layers)
    decode = tuple(summarise(tracer.decode_costs(np.full(micro, length, np.int32)), config.num_layers)
                   for length in steps)
    return Phases(prefill, decode, tracer.sharded)


def price_point(config: LlamaConfig, chip: Chip, split: Split, batch: int, isl: int, osl: int,
                weight_dtype: str = "bf16", kv_dtype: str = "bf16", low_precision_compute: bool = False) -> RunCost:
    """TTFT, TPOT, throughput and binding limit of ``batch`` concurrent requests of ``isl`` prompt and ``osl``
    generated tokens on ``split`` chips: ``price_point_traced``'s answer, from remembered phases."""
    weight_dtype, kv_dtype = canonical_dtype(weight_dtype), canonical_dtype(kv_dtype)
    steps = _step_lengths(isl, osl)
    capacity = plan_capacity(config, chip, batch, _cache_len(isl, steps), weight_dtype, kv_dtype, split=split)
    micro = micro_batch(batch, capacity)
    key = (config, capacity.tensor_parallel, capacity.expert_parallel, micro, isl, steps, weight_dtype, kv_dtype,
           low_precision_compute)
    phases = _PHASES.get(chip, key, lambda: _phases(config, chip, capacity.tensor_parallel,
                                                    capacity.expert_parallel, micro, isl, steps, weight_dtype,
                                                    kv_dtype, low_precision_compute))
    return compose_run(config, chip, capacity, batch, isl, phases.prefill, list(phases.decode), ACT_DTYPE,
                       phases.sharded)


def price_point_traced(config: LlamaConfig, chip: Chip, split: Split, batch: int, isl: int, osl: int,
                       weight_dtype: str = "bf16", kv_dtype: str = "bf16",
                       low_precision_compute: bool = False) -> RunCost:
    """The same point through ``cost_run`` itself: traced afresh, nothing remembered but the op plans."""
    lengths = [np.repeat(l, batch) for l in decode_lengths(isl, osl)]
    return cost_run(config, chip, batch, isl, lengths, weight_dtype=weight_dtype, act_dtype=ACT_DTYPE,
                    kv_dtype=kv_dtype, low_precision_compute=low_precision_compute, split=split)
