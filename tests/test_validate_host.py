"""Host validation of the compiled CPU path: interpret-mode cases are timed in interpret mode, priced on the
interpret-mode host and reported apart from the overall median; ours / XLA ratios per case."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from accelsim.chips import load_chip
from accelsim.commands.validate import ours_over_xla
from accelsim.validate.harness import CaseResult, Suite, compare, summarise
from accelsim.validate.suite import run_suite
from kernels.matmul import matmul


def _case(name, impl, measured, predicted):
    return compare(CaseResult(name=name, op="matmul", impl=impl, measured_s=measured, predicted_s=predicted,
                              bound="compute", flops=1.0, main_bytes=1.0, grid_steps=1))


def test_interpret_cases_have_their_own_median_and_stay_out_of_the_overall_one():
    cases = [_case("a", "ours", 0.010, 0.0105), _case("a", "xla", 0.010, 0.012), _case("a", "interpret", 0.100, 0.300),
             _case("b", "interpret", 0.100, 0.150)]
    summary = summarise(cases)
    assert summary["bound_cases"] == 2
    assert summary["median_abs_error"] == pytest.approx((0.05 + 0.2) / 2)
    assert summary["median_abs_error_interpret"] == pytest.approx((2.0 + 0.5) / 2)
    assert summary["misses"] == ["a [xla]"]
    assert summary["goal_met"]


def test_ours_over_xla_pairs_cases_by_name():
    cases = [_case("a", "ours", 0.012, 0.0), _case("a", "xla", 0.010, 0.0), _case("a", "interpret", 1.0, 0.0),
             _case("b", "ours", 0.5, 0.0)]
    assert ours_over_xla(cases) == {"a": pytest.approx(1.2)}


def test_an_interpret_case_is_priced_on_the_interpret_chip():
    chip = load_chip("tpu-v5e")
    slow_steps = dataclasses.replace(chip, step_overhead_s=1.0)
    a = jnp.ones((16, 16), jnp.float32)
    suite = Suite()
    for impl in ("ours", "interpret"):
        suite.add("m", "matmul", impl, jax.jit(lambda x, y: matmul(x, y, bm=8, bn=8, bk=8)), a, a)
    ours, interpret = run_suite(suite, chip, repeats=1, interpret_chip=slow_steps)
    assert ours.grid_steps == interpret.grid_steps == 8  # the (2, 2, 2) grid, traced from the Pallas form both times
    assert interpret.predicted_s - ours.predicted_s == pytest.approx(7 * 1.0)  # every step after the first
