"""Our FLOPs and bytes against ``jax.experimental.roofline`` and XLA's ``cost_analysis()`` on loop-free f32 code.

FLOPs are matmul FLOPs (2·M·N·K per dot), which all three count alike. Bytes differ by
construction, and each difference is explained: we count every op left to XLA unfused (it reads its
operands and writes its result); roofline counts the jaxpr's inputs and outputs once, as if
everything fused; XLA:CPU counts what its own fusions touch after optimisation.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.experimental import roofline

from accelsim.trace.workload import trace_workload

ARITHMETIC = {"add", "sub", "mul", "div", "max", "min", "neg", "exp", "log", "tanh", "logistic", "rsqrt",
              "sqrt", "pow", "integer_pow", "reduce_sum", "reduce_max", "erf"}


def _workloads() -> list[tuple[str, Callable, tuple]]:
    from kernels.attention import attention_reference

    f32 = jnp.float32
    a, b = jnp.ones((512, 768), f32), jnp.ones((768, 1024), f32)
    q, kv = jnp.ones((1, 8, 256, 64), f32), jnp.ones((1, 2, 256, 64), f32)
    x, w1, w2 = jnp.ones((128, 512), f32), jnp.ones((512, 2048), f32), jnp.ones((2048, 512), f32)
    return [
        ("matmul 512x768x1024", lambda a, b: a @ b, (a, b)),
        ("attention reference B1 H8 G2 S256 D64", lambda q, k, v: attention_reference(q, k, v, causal=False), (q, kv, kv)),
        ("MLP block x@w1 -> gelu -> @w2", lambda x, w1, w2: jax.nn.gelu(x @ w1) @ w2, (x, w1, w2)),
        ("elementwise chain tanh(a)*2+1", lambda a: jnp.tanh(a) * 2.0 + 1.0, (a,)),
    ]


def crosscheck() -> list[dict[str, Any]]:
    """One row per workload: FLOPs and bytes by us, by roofline, by cost_analysis, and why bytes differ."""
    rows = []
    for name, fn, args in _workloads():
        trace = trace_workload(fn, *args)
        our_flops = sum(m.flops * m.batch * m.weight for m in trace.matmuls)
        our_bytes = sum(op.bytes * op.weight for op in trace.ops) + sum(
            m.compulsory_bytes * m.batch * m.weight for m in trace.matmuls)
        elementwise = sum(op.elements * op.weight for op in trace.ops if op.name in ARITHMETIC)
        _, result = roofline.roofline(fn)(*args)
        analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
        analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
        xla_flops, xla_bytes = float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))
        io_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(args)) + sum(
            x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(jax.eval_shape(fn, *args)))
        rows.append({
            "workload": name,
            "flops_ours": our_flops, "flops_roofline": float(result.flops),
            "flops_xla_cost_analysis": xla_flops, "elementwise_ops_ours": elementwise,
            "flops_agree": our_flops == float(result.flops),
            "bytes_ours_unfused": our_bytes, "bytes_roofline": float(result.hbm_bytes),
            "bytes_roofline_unfused": float(result.unfused_hbm_bytes), "bytes_xla_cost_analysis": xla_bytes,
            "bytes_inputs_outputs": float(io_bytes),
            "explanation": _explain(our_bytes, float(result.hbm_bytes), float(result.unfused_hbm_bytes), xla_bytes,
                                    float(io_bytes), our_flops, xla_flops, elementwise),
        })
    return rows


def _explain(ours: float, fused: float, unfused: float, xla: float, io: float, our_flops: float,
             xla_flops: float, elementwise: float) -> str:
    parts = []
    if ours == unfused:
        parts.append("ours equals roofline's unfused count (every op reads its operands and writes its result)")
    elif ours > fused:
        parts.append(f"ours counts {ours - fused:,.0f} B more than roofline's fused count: intermediates each "
                     "written and read back, as unfused ops do")
    if fused == io:
        parts.append("roofline's fused count is exactly the inputs plus outputs")
    if xla and xla != io:
        parts.append(f"XLA:CPU's 'bytes accessed' ({xla:,.0f}) counts each of its fusions' operands and results, "
                     f"{'more' if xla > io else 'less'} than inputs plus outputs ({io:,.0f})")
    if xla_flops and xla_flops != our_flops:
        parts.append(f"XLA's FLOPs add {xla_flops - our_flops:,.0f} for elementwise work (we count {elementwise:,.0f} "
                     "elementwise results and keep them out of matmul FLOPs)")
    return "; ".join(parts) or "all counts agree"
