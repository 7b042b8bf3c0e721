"""Prefill/decode disaggregation by hand: the KV transfer over the slower side's links, the prefill pool's share."""

from __future__ import annotations

import pytest

from accelsim.chips import load_chip
from accelsim.models.config import load_config
from accelsim.serving.disaggregation import disaggregated_sweep, kv_transfer_s
from accelsim.serving.frontier import Workload
from tests.test_frontier import FakeRun


def fake_price(config, chip, split, batch, isl, osl, **_):
    """Prefill 0.1 s over the tensor ways; a decode step of 0.01 s whatever the batch."""
    return FakeRun(chip.name, batch, ttft_s=0.1 / split.tensor, tpot_s=0.01 if osl > 1 else None)


def test_kv_transfer_by_hand():
    workload = Workload(load_config("smollm2-135m"), 1000, 16)
    # 2 (K, V) x 30 layers x 3 KV heads x 64 x 2 bytes x 1000 tokens = 23.04 MB; the h100 side is slower
    # (1 chip x 18 x 25 GB/s = 450 GB/s against 2 x 900 GB/s), plus 1 us of link latency
    seconds = kv_transfer_s(workload, load_chip("h100-sxm"), 1, load_chip("b200"), 2)
    assert seconds == pytest.approx(23.04e6 / 450e9 + 1e-6)


def test_disaggregated_points_by_hand():
    workload = Workload(load_config("smollm2-135m"), 1000, 101, max_chips=1, pricer=fake_price)
    result = disaggregated_sweep(workload, load_chip("h100-sxm"), load_chip("b200"), points_per_octave=1)
    point = next(p for p in result.points if p.concurrency == 8)
    transfer = 23.04e6 / 450e9 + 1e-6
    slot = transfer + 100 * 0.01                              # the KV arrives, then 100 decode steps
    prefill_chips = 1 * 0.1 * 8 / slot                        # 1 chip x 0.1 s per prompt x 8 prompts per slot
    assert point.chip == "h100-sxm>b200" and point.chips == pytest.approx(1 + prefill_chips)
    assert point.ttft_s == pytest.approx(0.1 + transfer)
    assert point.tokens_per_s_total == pytest.approx(8 * 101 / slot)
    assert point.tokens_per_s_user == pytest.approx(100.0)
