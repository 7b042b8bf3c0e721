"""The validation suite: matmuls, prefill and decode attention, SmolLM2 prefill and decode steps.

Each case runs twice where XLA has its own op: our kernel (with the plan's blocks for the chip being
validated) and XLA's native op. Each is timed after warm-up (median of repeats, block_until_ready)
and predicted by tracing exactly what ran and pricing it on the chip.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from accelsim.chips import Chip
from accelsim.ops import all_ops
from accelsim.trace.price import price_workload
from accelsim.trace.workload import trace_workload
from accelsim.validate.harness import CaseResult, Suite
from accelsim.validate.timing import median_time
from kernels.decode import KVCache

MODEL_PROMPTS = [64, 256]
MODEL_CONTEXTS = [128, 1024]
QUICK_SHAPES = 3  # quick mode keeps each op's first suite shapes


def _array(seed: int, shape: tuple[int, ...], dtype) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32).astype(dtype)


def build_suite(chip: Chip, dtype: str = "f32", quick: bool = False, with_model: bool = True,
                progress: Callable[[str], None] = lambda m: None) -> Suite:
    """Cases for ``chip``: every registered op's kernel with the chip's plan, and XLA's own op."""
    suite = Suite()
    for op in all_ops():
        for i, shape in enumerate(op.suite_shapes[:QUICK_SHAPES] if quick else op.suite_shapes):
            blocks = op.plan(shape, chip, dtype).blocks
            suite.add(op.label(shape), op.name, "ours", *op.build(shape, dtype, blocks, seed=i))
            if op.build_xla is not None:
                suite.add(op.label(shape), op.name, "xla", *op.build_xla(shape, dtype, seed=i))
    if with_model:
        _add_model_cases(suite, chip, quick, progress)
    return suite


def _add_model_cases(suite: Suite, chip: Chip, quick: bool, progress: Callable[[str], None]) -> None:
    from accelsim.errors import AccelsimError
    from accelsim.models.llama import decode, prefill, stack_params
    from accelsim.models.plans import phase_blocks
    from accelsim.models.reference import forward
    from accelsim.models.weights import load_smollm2

    try:
        config, raw = load_smollm2()
    except AccelsimError as exc:
        progress(f"  skipping SmolLM2 cases: {exc}")
        return
    params = stack_params(raw, config)
    ids = np.random.default_rng(0).integers(0, config.vocab_size, 2048).astype(np.int32)
    for prompt in MODEL_PROMPTS[:1] if quick else MODEL_PROMPTS:
        pre, _ = phase_blocks(config, chip, "f32", 1, prompt, prompt + 1)
        tokens = jnp.asarray(ids[None, :prompt])
        suite.add(f"SmolLM2 prefill {prompt} tokens", "model_prefill", "ours",
                  jax.jit(lambda p, t, bl=pre, n=prompt: prefill(p, t, config=config, blocks=bl, cache_len=n + 1)[0]),
                  params, tokens)
        suite.add(f"SmolLM2 prefill {prompt} tokens", "model_prefill", "xla",
                  jax.jit(lambda p, t: forward(p, config, t)[:, -1]), raw, tokens)
    for context in MODEL_CONTEXTS[:1] if quick else MODEL_CONTEXTS:
        _, dec = phase_blocks(config, chip, "f32", 1, context - 1, context)
        shape = (config.num_layers, 1, config.num_kv_heads, context, config.head_dim)
        cache = KVCache(_array(1, shape, jnp.float32), _array(2, shape, jnp.float32))
        suite.add(f"SmolLM2 decode step at context {context}", "model_decode", "ours",
                  jax.jit(lambda p, t, c, l, bl=dec: decode(p, t, c, l, config=config, blocks=bl)[0]),
                  params, jnp.asarray(ids[:1]), cache, jnp.asarray([context], jnp.int32))


def run_suite(suite: Suite, chip: Chip, repeats: int = 5, progress: Callable[[str], None] = lambda m: None) -> list[CaseResult]:
    """Time every case and predict it from its own trace, priced on ``chip``."""
    results = []
    for name, op, impl, fn, args in suite.cases:
        measured = median_time(lambda: fn(*args), repeats=repeats, warmup=1)
        costs = price_workload(trace_workload(fn, *args), chip)
        results.append(CaseResult(
            name=name, op=op, impl=impl, measured_s=measured, predicted_s=sum(c.time_s for c in costs),
            bound=_dominant_bound(costs), flops=sum(c.flops for c in costs),
            main_bytes=sum(c.bytes_per_level.get(chip.main_memory.name, 0.0) for c in costs),
            grid_steps=int(sum(c.grid_steps for c in costs)),
        ))
        progress(f"  {name} [{impl}]: measured {measured * 1e3:.2f} ms, predicted {results[-1].predicted_s * 1e3:.2f} ms")
    return results


def _dominant_bound(costs) -> str:
    by_bound: dict[str, float] = {}
    for cost in costs:
        by_bound[cost.bound] = by_bound.get(cost.bound, 0.0) + cost.time_s
    return max(by_bound, key=by_bound.get) if by_bound else "none"
