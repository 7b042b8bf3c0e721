"""Parallel splits and run composition: Split values, capacity under a split, pipeline micro-batches,
launch-bound phases. Every expected value is worked out by hand here."""

import dataclasses

import pytest

from accelsim.chips import load_chip
from accelsim.cost.result import Cost
from accelsim.errors import AccelsimError
from accelsim.models.capacity import Split, candidate_splits, max_concurrency, plan_capacity
from accelsim.models.config import LlamaConfig
from accelsim.models.costing import OpRow, PhaseCost, compose_run, launch_bound_s, micro_batch

# 4 layers, hidden 64, MLP 128, 4 heads of 16 (2 KV heads), vocab 100, tied embeddings
TINY = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_layers=4, num_heads=4,
                   num_kv_heads=2, head_dim=16, rope_theta=1e4, rms_norm_eps=1e-5, max_position_embeddings=4096,
                   tie_embeddings=True, name="tiny")
# per layer: attention 64*(64 + 2*32) + 64*64 = 12,288; MLP 3*64*128 = 24,576; norms 128 -> 36,992
# total: 4 * 36,992 + 100*64 + 64 = 154,432 parameters
TINY_PARAMS = 154_432
KV_PER_TOKEN_BF16 = 2 * 4 * 32 * 2  # K and V, 4 layers, 2 KV heads x 16, 2 bytes = 512 bytes


def _chip(memory_bytes: float, name: str = "h100-sxm"):
    chip = load_chip(name)
    main = dataclasses.replace(chip.main_memory, capacity_bytes=memory_bytes, instances=1)
    return dataclasses.replace(chip, memory=(main,) + chip.memory[1:])


def test_split_labels_and_chips():
    assert Split(8, 2).chips == 16 and Split(8, 2).label == "TP8xPP2"
    assert Split().label == "1 chip" and Split(1, 72).label == "PP72"
    assert Split(8, 1, 8).label == "EP8"


@pytest.mark.parametrize("kwargs, field", [({"tensor": 0}, "tensor"), ({"pipeline": 2.5}, "pipeline"),
                                           ({"tensor": 4, "expert": 2}, "expert")])
def test_bad_split_names_its_field(kwargs, field):
    with pytest.raises(AccelsimError, match=f"split {field}"):
        Split(**kwargs)


def test_max_concurrency_by_hand():
    chip = _chip(1_000_000)
    weights = TINY_PARAMS * 2
    # one chip: (1e6 - 308,864) // (512 * 100) = 691,136 // 51,200 = 13
    assert max_concurrency(TINY, chip, Split(), 100, "bf16", "bf16") == (1_000_000 - weights) // (512 * 100) == 13
    # TP4 over 2 KV heads replicates each head twice: (4e6 - 308,864) // (512 * 100 * 2) = 36
    assert max_concurrency(TINY, chip, Split(4), 100, "bf16", "bf16") == (4_000_000 - weights) // 102_400 == 36


def test_split_that_cannot_hold_the_model_is_refused():
    chip = _chip(200_000)  # 308,864 bytes of bf16 weights need 2 chips
    with pytest.raises(AccelsimError, match="split 1 chip"):
        plan_capacity(TINY, chip, 1, 16, "bf16", "bf16", split=Split())
    cap = plan_capacity(TINY, chip, 1, 16, "bf16", "bf16", split=Split(1, 2))
    assert (cap.chips, cap.tensor_parallel, cap.pipeline_stages, cap.split) == (2, 1, 2, "pipeline")


def test_tensor_parallel_beyond_the_scale_up_domain_is_refused():
    chip = load_chip("h100-sxm")
    big = dataclasses.replace(TINY, num_heads=32, num_kv_heads=8, head_dim=2)
    ways = 2 * chip.scale_up.chips  # h100-sxm: an 8-GPU NVSwitch board
    with pytest.raises(AccelsimError, match="scale-up domain"):
        plan_capacity(big, chip, 1, 16, "bf16", "bf16", split=Split(ways))


def test_candidate_splits_hold_the_weights_and_stay_within_max_chips():
    chip = _chip(200_000)
    splits = candidate_splits(TINY, chip, max_chips=4, context=16)
    assert splits and all(s.chips <= 4 for s in splits)
    assert Split() not in splits  # one chip cannot hold 308,864 bytes
    assert Split(1, 2) in splits and Split(2, 1) in splits


def _phase(time_s: float, calls: int = 1, bound: str = "hbm") -> PhaseCost:
    cost = Cost.of(bound, time_s, calls=calls)
    return PhaseCost(cost, (OpRow("op", cost, False),))


def test_pipeline_micro_batches_by_hand():
    cap = dataclasses.replace(plan_capacity(TINY, _chip(1e9), 8, 64, "bf16", "bf16"), pipeline_stages=4,
                              chips=4, chips_needed=1, split="pipeline")
    assert micro_batch(8, cap) == 2 and micro_batch(3, cap) == 1
    chip = dataclasses.replace(load_chip("h100-sxm"), links=())  # no link time: the pass alone
    run = compose_run(TINY, chip, cap, 8, 32, _phase(1e-3), [_phase(2e-4), _phase(4e-4)])
    # 4 micro-batches of 2 over 4 stages: the last prompt ends (4 + 4 - 1) / 4 passes after the first starts
    assert run.ttft_s == pytest.approx(1e-3 * 7 / 4)
    assert run.tpot_s == pytest.approx(3e-4)
    assert run.tokens_per_s_aggregate == pytest.approx(8 / 3e-4)


def test_launch_bound_phase_by_hand():
    chip = dataclasses.replace(load_chip("h100-sxm"), launch_overhead_s=5e-6)
    short = Cost.of("hbm", 10 * 2e-6, calls=10)   # 10 kernels of 2 us: each waits for its 5 us launch
    long = Cost.of("compute", 3 * 1e-4, calls=3)   # 3 kernels of 100 us: launches hide behind them
    phase = PhaseCost(short + long, (OpRow("a", short, True), OpRow("b", long, True)))
    assert launch_bound_s(phase, chip) == pytest.approx(10 * 5e-6 + 3e-4)
    cap = plan_capacity(TINY, chip, 1, 64, "bf16", "bf16")
    graphs = compose_run(TINY, chip, cap, 1, 32, phase, [phase])
    eager = compose_run(TINY, chip, cap, 1, 32, phase, [phase], cuda_graphs=False)
    assert graphs.tpot_s == pytest.approx(10 * 2e-6 + 3e-4)
    assert eager.tpot_s == pytest.approx(10 * 5e-6 + 3e-4)


def _domain_chip(topology: str, chips: int = 64):
    from accelsim.chips.spec import Link, ScaleUp
    return dataclasses.replace(load_chip("h100-sxm"), links=(Link("l", 1e9, 4, "test", latency_s=9.0),),
                               scale_up=ScaleUp(chips, topology, "test", hop_latency_s=1e-6))


@pytest.mark.parametrize("topology, devices, hops", [
    ("switch", 8, 2),                  # reduce-scatter then all-gather, each one hop to every peer
    ("mesh", 8, 2),
    ("torus2d", 16, 2 * 2 * (4 - 1)),  # rings along 2 dims of 4 chips: 2 (4 - 1) hops each
    ("torus3d", 64, 3 * 2 * (4 - 1)),  # 3 dims of 4 chips
])
def test_all_reduce_hops_follow_the_topology(topology, devices, hops):
    from accelsim.cost.interconnect import collective_time
    nbytes = 1e6
    sent = 2 * (devices - 1) / devices * nbytes
    got = collective_time("all_reduce", nbytes, devices, _domain_chip(topology))
    assert got.sent_bytes == pytest.approx(sent)
    # 4 links of 1 GB/s per direction; the domain's 1 us hop latency, not the links' 9 s
    assert got.time_s == pytest.approx(sent / 4e9 + hops * 1e-6)
