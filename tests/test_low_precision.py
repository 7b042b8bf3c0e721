"""Low-precision compute (fp8 x fp8, fp4 x fp4) is priced at its own peak and kept apart from weight-only quantisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accelsim.chips import load_chip
from accelsim.errors import AccelsimError
from accelsim.models.config import load_config
from accelsim.models.costing import ModelTracer
from accelsim.trace.price import price_kernel
from accelsim.trace.workload import trace_workload
from kernels.matmul import matmul


def _priced(a_dtype, b_dtype, chip):
    a = jax.ShapeDtypeStruct((256, 512), a_dtype)
    b = jax.ShapeDtypeStruct((512, 256), b_dtype)
    trace = trace_workload(lambda x, y: matmul(x, y, bm=128, bn=128, bk=128, out_dtype=jnp.bfloat16), a, b)
    (record,) = trace.kernels
    return record, price_kernel(record, chip)


def test_fp8_products_run_at_the_fp8_peak_and_weight_only_at_bf16():
    chip = load_chip("h100-sxm")
    real, real_cost = _priced(jnp.float8_e4m3fn, jnp.float8_e4m3fn, chip)
    weight_only, weight_only_cost = _priced(jnp.bfloat16, jnp.float8_e4m3fn, chip)
    assert {(p.lhs, p.rhs) for p in real.dots} == {("fp8", "fp8")}
    assert {p.compute_dtype for p in weight_only.dots} == {"bf16"}  # the fp8 weights are widened to bf16
    # Same products at H100's dense fp8 peak (1978.9 TFLOP/s) instead of its bf16 peak (989.4 TFLOP/s).
    assert real_cost.compute_cycles == pytest.approx(weight_only_cost.compute_cycles * 989.4 / 1978.9, rel=1e-12)


def test_fp4_is_priced_where_the_chip_has_it_and_refused_where_it_has_not():
    b200 = load_chip("b200")
    _, fp4 = _priced(jnp.float4_e2m1fn, jnp.float4_e2m1fn, b200)
    _, fp8 = _priced(jnp.float8_e4m3fn, jnp.float8_e4m3fn, b200)
    assert fp4.compute_cycles == pytest.approx(fp8.compute_cycles / 2, rel=1e-12)  # 9 vs 4.5 PFLOP/s dense
    # fp4 operands are half a byte each: A and B bytes halve against fp8 (256*512 + 512*256 elements each)
    with pytest.raises(AccelsimError, match="no dense fp4"):
        _priced(jnp.float4_e2m1fn, jnp.float4_e2m1fn, load_chip("h100-sxm"))


def test_the_model_multiplies_in_the_weight_dtype_only_when_asked():
    config = load_config("llama-3-8b")
    chip = load_chip("h100-sxm")
    lengths = np.full(1, 65, np.int32)
    dtypes = {}
    for low in (False, True):
        tracer = ModelTracer(config, chip, 1, 64, 80, weight_dtype="fp8", low_precision_compute=low)
        records = tracer._decode.records(*tracer._decode_args, lengths)
        dtypes[low] = {p.compute_dtype for k in records.kernels if k.name.startswith("accelsim_matmul")
                       for p in k.dots}
    assert dtypes[False] == {"bf16"}
    assert dtypes[True] == {"fp8"}
