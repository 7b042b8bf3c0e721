"""Prefill/decode disaggregation: prompts on one pool of chips, decode on another, the KV cache sent between.

The prefill pool runs one prompt at a time on the prefill split that spends the fewest chip-seconds per
prompt (batch 1 gives the shortest TTFT; a 1k-token prompt already fills the matrix units). Each prompt's
KV cache (every layer's K and V for the ``isl`` prompt tokens) then crosses to the decode replica over the
slower side's links: bytes / min(prefill chips x link bandwidth, decode chips x link bandwidth) + one link
latency. A decode slot is held for that transfer and the decode steps; the prefill pool is sized to keep up,
so each decode replica is charged its share of prefill chips: prefill chips x TTFT x requests per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accelsim.chips import Chip
from accelsim.errors import AccelsimError
from accelsim.models.capacity import Split, candidate_splits, kv_bytes_per_token
from accelsim.serving.frontier import ChipSweep, Progress, Workload, plan
from accelsim.serving.point import ServingPoint


@dataclass(frozen=True)
class PrefillPool:
    """The prefill split chosen, its TTFT for one prompt, and the chip it runs on."""

    chip: Chip
    split: Split
    ttft_s: float

    @property
    def chip_seconds(self) -> float:
        return self.split.chips * self.ttft_s


def link_bandwidth(chip: Chip, chips: int) -> float:
    """Bytes/s that ``chips`` of ``chip`` can send or receive together (every link, one direction)."""
    if not chip.links:
        raise AccelsimError(f"{chip.name}: its file lists no chip-to-chip link to carry the KV cache")
    return chip.interconnect_bytes_per_s * chips


def kv_transfer_s(workload: Workload, prefill: Chip, prefill_chips: int, decode: Chip, decode_chips: int) -> float:
    """Seconds to move one prompt's KV cache from the prefill replica to the decode replica."""
    kv = kv_bytes_per_token(workload.config, workload.kv_dtype) * workload.isl
    bandwidth = min(link_bandwidth(prefill, prefill_chips), link_bandwidth(decode, decode_chips))
    latency = max(prefill.links[0].latency_s, decode.links[0].latency_s)
    return kv / bandwidth + latency


def prefill_pool(workload: Workload, chip: Chip) -> PrefillPool:
    """The prefill split of the fewest chip-seconds per prompt on ``chip``."""
    splits = candidate_splits(workload.config, chip, workload.chip_limit(chip), workload.isl + 1,
                              workload.weight_dtype, workload.kv_dtype)
    if not splits:
        raise AccelsimError(f"--prefill-chip {chip.name}: {workload.config.name} fits no split of at most "
                            f"{workload.chip_limit(chip)} chips")
    pools = [PrefillPool(chip, s, float(workload.price(chip, s, 1, osl=1).ttft_s)) for s in splits]
    return min(pools, key=lambda p: p.chip_seconds)


def disaggregated_sweep(workload: Workload, prefill: Chip, decode: Chip, points_per_octave: int = 4,
                        progress: Progress | None = None) -> ChipSweep:
    """Every decode split and concurrency on ``decode``, fed by the best prefill pool on ``prefill``."""
    if workload.osl < 2:
        raise AccelsimError("--osl 1 has no decode phase to disaggregate (use at least 2)")
    pool = prefill_pool(workload, prefill)
    todo = plan(workload, decode, points_per_octave)
    total, done = sum(len(b) for _, b in todo), 0
    result = ChipSweep(f"{prefill.name}>{decode.name}")
    for split, batches in todo:
        result.max_concurrency[split.label] = batches[-1]
        transfer = kv_transfer_s(workload, prefill, pool.split.chips, decode, split.chips)
        for batch in batches:
            run = workload.price(decode, split, batch)
            result.points.append(_point(workload, pool, split, batch, run, transfer))
            done += 1
            if progress:
                progress(done, total, f"{result.chip} {split.label} x{batch}")
    return result


def _point(workload: Workload, pool: PrefillPool, split: Split, batch: int, run: Any, transfer: float) -> ServingPoint:
    tpot = float(run.tpot_s)
    slot = transfer + (workload.osl - 1) * tpot
    prefill_chips = pool.chip_seconds * batch / slot
    extra = {"prefill_chip": pool.chip.name, "prefill_split": pool.split.label, "prefill_ttft_s": pool.ttft_s,
             "prefill_chips": prefill_chips, "decode_chip": run.chip, "decode_chips": split.chips,
             "kv_transfer_s": transfer}
    return ServingPoint(f"{pool.chip.name}>{run.chip}", f"P:{pool.split.label} D:{split.label}",
                        split.chips + prefill_chips, batch, workload.isl, workload.osl, pool.ttft_s + transfer, tpot,
                        run.binding_limit, slot, tuple(extra.items()))

