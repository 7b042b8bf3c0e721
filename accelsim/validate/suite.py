"""The validation suite: matmuls, prefill and decode attention, SmolLM2 prefill and decode steps.

Each case runs twice where XLA has its own op: our kernel (with the plan's blocks for the chip being
validated, in the form the backend runs by default: compiled on a CPU host) and XLA's native op. Each is
timed after warm-up (median of repeats, block_until_ready) and predicted by tracing exactly what ran and
pricing it on the chip. Given an ``interpret_chip`` (the host with Pallas interpret mode's per-step costs),
each op's first ``INTERPRET_SHAPES`` shapes also run in interpret mode with that chip's plan (impl
``"interpret"``), priced on it.
"""

from __future__ import annotations

import contextlib
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
from kernels.backend import lowering_for
from kernels.decode import KVCache, decode_step

MODEL_PROMPTS = [64, 256]
MODEL_CONTEXTS = [128, 1024]
QUICK_SHAPES = 3  # quick mode keeps each op's first suite shapes
INTERPRET_SHAPES = 1  # interpret mode re-moves whole operands each grid step: slow, so one shape per op


def _array(seed: int, shape: tuple[int, ...], dtype) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32).astype(dtype)


def build_suite(chip: Chip, dtype: str = "f32", quick: bool = False, with_model: bool = True,
                progress: Callable[[str], None] = lambda m: None, interpret_chip: Chip | None = None) -> Suite:
    """Cases for ``chip``: every registered op's kernel with the chip's plan, and XLA's own op; with
    ``interpret_chip``, interpret-mode cases too."""
    suite = Suite()
    for op in all_ops():
        for i, shape in enumerate(op.suite_shapes[:QUICK_SHAPES] if quick else op.suite_shapes):
            blocks = op.plan(shape, chip, dtype).blocks
            fn, inputs = op.build(shape, dtype, blocks, seed=i)
            suite.add(op.label(shape), op.name, "ours", fn, *inputs,
                      timed=_in_place_decode(inputs, blocks) if op.name == "decode" else None)
            if op.build_xla is not None:
                fn, inputs = op.build_xla(shape, dtype, seed=i)
                suite.add(op.label(shape), op.name, "xla", fn, *inputs)
            if interpret_chip is not None and i < INTERPRET_SHAPES:
                fn, inputs = op.build(shape, dtype, op.plan(shape, interpret_chip, dtype).blocks, seed=i)
                suite.add(op.label(shape), op.name, "interpret", fn, *inputs)
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


def _in_place_decode(inputs: tuple, blocks: dict) -> Callable[[], jax.Array]:
    """The decode op's step as a model's decode loop runs it: the KV cache donated and the updated cache fed to
    the next call, so the append writes its rows in place as priced (not into a fresh copy of the cache)."""
    q, k_new, v_new, cache, lengths = inputs
    step = jax.jit(lambda c: decode_step(q, k_new, v_new, c, lengths, **blocks), donate_argnums=0)
    state = [jax.tree.map(jnp.copy, cache)]

    def timed() -> jax.Array:
        out, state[0] = step(state[0])
        return out

    return timed


def run_suite(suite: Suite, chip: Chip, repeats: int = 5, progress: Callable[[str], None] = lambda m: None,
              interpret_chip: Chip | None = None) -> list[CaseResult]:
    """Time every case and predict it from its own trace, priced on ``chip`` (interpret-mode cases: run in
    interpret mode and priced on ``interpret_chip``)."""
    results = []
    for name, op, impl, fn, args, timed in suite.cases:
        interpret = impl == "interpret"
        target = (interpret_chip or chip) if interpret else chip
        with lowering_for("interpret") if interpret else contextlib.nullcontext():
            measured = median_time(timed or (lambda: fn(*args)), repeats=repeats, warmup=1)
        costs = price_workload(trace_workload(fn, *args), target)
        results.append(CaseResult(
            name=name, op=op, impl=impl, measured_s=measured, predicted_s=sum(c.time_s for c in costs),
            bound=_dominant_bound(costs), flops=sum(c.flops for c in costs),
            main_bytes=sum(c.bytes_per_level.get(target.main_memory.name, 0.0) for c in costs),
            grid_steps=int(sum(c.grid_steps for c in costs)),
        ))
        progress(f"  {name} [{impl}]: measured {measured * 1e3:.2f} ms, predicted {results[-1].predicted_s * 1e3:.2f} ms")
    return results


def _dominant_bound(costs) -> str:
    by_bound: dict[str, float] = {}
    for cost in costs:
        by_bound[cost.bound] = by_bound.get(cost.bound, 0.0) + cost.time_s
    return max(by_bound, key=by_bound.get) if by_bound else "none"
