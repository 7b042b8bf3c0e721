"""``price_point`` answers what ``cost_run`` answers, point by point, including points that share phases."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.chips import load_chip
from accelsim.models.capacity import Split
from accelsim.models.config import load_config
from accelsim.models.costing import ModelTracer
from accelsim.serving.pricing import price_point, price_point_traced

ISL, OSL = 48, 5


def _same_run(fast, traced):
    assert fast.ttft_s == pytest.approx(traced.ttft_s, rel=1e-12)
    assert fast.tpot_s == pytest.approx(traced.tpot_s, rel=1e-12)
    assert fast.tpot_steps_s == pytest.approx(traced.tpot_steps_s, rel=1e-12)
    assert fast.binding_limit == traced.binding_limit
    assert fast.capacity == traced.capacity
    assert fast.to_dict() == traced.to_dict()


@pytest.mark.parametrize("model, split", [("smollm2-135m", Split()), ("llama-3.1-8b", Split(2))])
@pytest.mark.parametrize("chip_name", ["h100-sxm", "tpu-v5e"])
def test_price_point_equals_cost_run(model, split, chip_name):
    config, chip = load_config(model), load_chip(chip_name)
    for batch in (1, 6):
        _same_run(price_point(config, chip, split, batch, ISL, OSL), price_point_traced(config, chip, split, batch,
                                                                                        ISL, OSL))


def test_points_sharing_a_micro_batch_each_equal_their_own_cost_run():
    config, chip = load_config("smollm2-135m"), load_chip("h100-sxm")
    points = [(Split(2, 1), 3), (Split(2, 2), 6), (Split(2, 2), 5), (Split(1, 3), 7)]
    for split, batch in points + points:  # the second pass answers from remembered phases
        fast = price_point(config, chip, split, batch, ISL, OSL, weight_dtype="int8")
        _same_run(fast, price_point_traced(config, chip, split, batch, ISL, OSL, weight_dtype="int8"))


def test_decode_steps_read_from_one_walk_equal_a_fresh_trace_each():
    config, chip = load_config("smollm2-135m"), load_chip("b200")
    lengths = [np.full(3, n, np.int32) for n in (20, 33, 47)]
    walked_once = ModelTracer(config, chip, 3, 16, 48)
    for step in lengths:
        fresh = ModelTracer(config, chip, 3, 16, 48).decode_costs(step)
        assert walked_once.decode_costs(step) == fresh
