"""Through the op registry: every op's executed kernels, traced, cost exactly what its plan says, on every preset."""

from __future__ import annotations

import pytest

from accelsim.chips import load_chip, preset_names
from accelsim.errors import AccelsimError
from accelsim.ops import all_ops, get_op, op_of_kernel
from accelsim.shapes import AttentionShape, DecodeShape, MatmulShape
from accelsim.trace.price import price_workload, total
from accelsim.trace.workload import trace_workload

PRESETS = [n for n in preset_names() if n != "host"]
SMALL = {"matmul": MatmulShape(40, 200, 72), "attention": AttentionShape(1, 4, 2, 70, 70, 64, causal=True),
         "decode": DecodeShape(3, 8, 2, 300, 64)}


def test_every_op_is_registered_once_and_found_by_its_kernels():
    assert sorted(op.name for op in all_ops()) == ["attention", "decode", "matmul"]
    for op in all_ops():
        assert all(op_of_kernel(name) is op for name in op.kernel_names)
    assert op_of_kernel("a_users_own_kernel") is None
    with pytest.raises(AccelsimError, match="unknown op 'conv'"):
        get_op("conv")


@pytest.mark.parametrize("chip_name", PRESETS)
@pytest.mark.parametrize("op_name", sorted(SMALL))
def test_traced_counts_equal_the_plan_through_the_registry(op_name, chip_name):
    op, chip, shape = get_op(op_name), load_chip(chip_name), SMALL[op_name]
    plan = op.plan(shape, chip, "bf16")
    fn, args = op.build(shape, "bf16", plan.blocks)
    costs = price_workload(trace_workload(fn, *args), chip)
    assert all(c.op == op_name for c in costs if c.kind == "kernel")
    summed = total([c for c in costs if c.kind == "kernel"])
    assert summed.bytes_per_level == plan.bytes_per_level
    assert summed.total_cycles == pytest.approx(plan.total_cycles, rel=1e-12)
