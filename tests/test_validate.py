"""The validation harness: comparison arithmetic, flagging of a planted mismatch, and a stable JSON schema."""

from __future__ import annotations

import json

import pytest

from accelsim.chips import load_chip
from accelsim.report.table import to_json
from accelsim.trace.price import price_workload
from accelsim.trace.workload import trace_workload
from accelsim.validate.harness import CASE_KEYS, SCHEMA, CaseResult, compare, report, summarise


def _case(measured, predicted, **kw):
    base = dict(name="c", op="matmul", impl="ours", measured_s=measured, predicted_s=predicted, bound="compute",
                flops=1.0, main_bytes=1.0, grid_steps=1)
    base.update(kw)
    return CaseResult(**base)


def test_ratio_and_error_arithmetic():
    r = compare(_case(0.010, 0.012))
    assert r.ratio == pytest.approx(1.2) and r.error == pytest.approx(0.2)
    assert r.included and r.miss


def test_planted_mismatch_is_flagged_and_agreement_is_not():
    honest = compare(_case(0.050, 0.052))
    planted = compare(_case(0.050, 0.150))
    assert not honest.miss and planted.miss
    summary = summarise([honest, planted])
    assert summary["misses"] == ["c [ours]"]
    assert summary["median_abs_error"] == pytest.approx((0.04 + 2.0) / 2)
    assert not summary["goal_met"]


def test_cases_below_cutoff_do_not_count():
    tiny = compare(_case(1e-5, 5e-4))
    assert not tiny.included and "cut-off" in tiny.reason
    assert summarise([tiny])["median_abs_error"] is None


def test_every_miss_gets_a_reason():
    for kw in (dict(impl="ours", grid_steps=40), dict(impl="xla", bound="compute", grid_steps=0),
               dict(impl="xla", bound="dram", grid_steps=0)):
        for measured, predicted in ((0.01, 0.03), (0.03, 0.01)):
            r = compare(_case(measured, predicted, **kw), context={"llc_bytes": 1e9})
            assert r.miss and r.reason and r.reason != "within tolerance"


def test_json_schema_is_stable():
    doc = report([compare(_case(0.01, 0.011))], "host", {"backend": "cpu"}, crosschecks=[])
    parsed = json.loads(to_json(doc))
    assert parsed["schema"] == SCHEMA
    assert set(parsed) == {"schema", "chip", "environment", "cutoff_s", "threshold", "cases", "summary", "crosschecks"}
    assert tuple(sorted(parsed["cases"][0])) == tuple(sorted(CASE_KEYS))
    assert {"cases", "bound_cases", "median_abs_error", "threshold", "goal_met", "misses"} <= set(parsed["summary"])


def test_prediction_comes_from_the_trace_of_what_ran():
    import jax.numpy as jnp

    chip = load_chip("tpu-v5e")
    a = jnp.ones((256, 512), jnp.float32)
    costs = price_workload(trace_workload(lambda x: jnp.tanh(x) @ x.T, a), chip)
    assert {c.kind for c in costs} == {"xla_matmul", "xla_op"}
    matmul = next(c for c in costs if c.kind == "xla_matmul")
    assert matmul.flops == 2 * 256 * 512 * 256
    assert matmul.time_s == pytest.approx(max(matmul.flops / chip.peak_flops("f32"),
                                              (2 * 256 * 512 + 256 * 256) * 4 / chip.main_memory.bandwidth_bytes_per_s))


def test_crosscheck_flops_agree():
    from accelsim.validate.crosscheck import crosscheck

    rows = crosscheck()
    assert rows and all(r["flops_agree"] for r in rows)
    assert all(r["explanation"] for r in rows)
