"""Cost of a model run on a chip: trace the same model code with the chip's blocks, price every op.

Weights are never needed: parameters are ``jax.ShapeDtypeStruct``s, so the same path serves the
SmolLM2 run that just executed and a Llama-405B estimate. Decode steps are priced with the lengths
each step actually ran with (the decode kernel's bytes depend on them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from accelsim.chips import Chip
from accelsim.cost.result import Cost
from accelsim.dtypes import canonical_dtype
from accelsim.errors import AccelsimError
from accelsim.models.capacity import Capacity, interconnect_seconds, plan_capacity
from accelsim.models.config import LlamaConfig
from accelsim.models.llama import abstract_params, decode, prefill
from accelsim.models.plans import phase_blocks
from accelsim.trace.price import OpCost, price_workload
from accelsim.trace.workload import TracedWorkload
from kernels.decode import KVCache

JAX_DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16, "fp8": jnp.float8_e4m3fn,
              "int8": jnp.int8, "int4": jnp.int4}


@dataclass(frozen=True)
class OpRow:
    """One op of a phase: its records summed over their calls (per run), and whether it runs once per layer."""

    name: str
    cost: Cost
    per_layer: bool

    def __getattr__(self, attribute: str):  # calls, bytes_per_level, flops, time_s, bound read through
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.cost, attribute)


@dataclass(frozen=True)
class PhaseCost:
    """A phase (prefill, one decode step): its total cost and its ops, costliest first."""

    cost: Cost = Cost()
    ops: tuple[OpRow, ...] = ()

    def __getattr__(self, attribute: str):  # time_s, bytes_per_level, flops, bound read through
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.cost, attribute)

    def to_dict(self) -> dict:
        return {**self.cost.to_dict(),
                "ops": [{"name": r.name, "per_layer": r.per_layer, **r.cost.to_dict()} for r in self.ops]}


@dataclass
class RunCost:
    chip: str
    batch: int
    prompt_len: int
    new_tokens: int
    ttft_s: float
    tpot_s: float
    tpot_steps_s: list[float]
    tokens_per_s_user: float
    tokens_per_s_aggregate: float
    binding_limit: str
    capacity: Capacity
    interconnect_prefill_s: float
    interconnect_decode_s: float
    prefill: PhaseCost
    decode: PhaseCost  # the last decode step

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["capacity"] = self.capacity.to_dict()
        out["prefill"], out["decode"] = self.prefill.to_dict(), self.decode.to_dict()
        return out


def _op_name(cost: OpCost) -> str:
    """'attention/qkv' for a kernel, 'mlp/mul' for an XLA op: the scope the model code named, then the op."""
    parts = [p for p in cost.scope.split("/") if p and not p.startswith(("jit(", "while", "body", "scan", "accelsim_"))]
    if cost.kind == "kernel":
        kernel = cost.name.removeprefix("accelsim_")
        return "/".join(parts[-2:] + ([] if kernel == "matmul" else [kernel]))
    return "/".join(parts[-1:] + [cost.name])


def summarise(costs: list[OpCost], num_layers: int) -> PhaseCost:
    """Group priced records into ops; records inside the layer scan ran ``num_layers`` times."""
    grouped: dict[str, Cost] = {}
    for op in costs:
        name = _op_name(op)
        grouped[name] = grouped.get(name, Cost()) + op.cost
    rows = sorted((OpRow(name, cost, cost.calls >= num_layers) for name, cost in grouped.items()),
                  key=lambda r: -r.cost.time_s)
    return PhaseCost(sum(grouped.values(), Cost()), tuple(rows))


class ModelTracer:
    """The model's prefill and decode step traced abstractly with one chip's blocks, ready to price."""

    def __init__(self, config: LlamaConfig, chip: Chip, batch: int, prompt_len: int, cache_len: int,
                 weight_dtype: str = "bf16", act_dtype: str = "bf16", kv_dtype: str | None = None) -> None:
        self.config, self.chip = config, chip
        self.batch, self.prompt_len, self.cache_len = batch, prompt_len, cache_len
        self.act_dtype = canonical_dtype(act_dtype)
        self.weight_dtype = canonical_dtype(weight_dtype)
        self.kv_dtype = canonical_dtype(kv_dtype or act_dtype)
        if self.kv_dtype != self.act_dtype:
            raise AccelsimError(f"KV-cache dtype {self.kv_dtype} must equal the activation dtype {self.act_dtype}: "
                                "the decode kernel attends in the cache's dtype")
        if self.act_dtype not in ("f32", "bf16", "fp16"):
            raise AccelsimError(f"activation dtype {act_dtype} cannot run our kernels: use bf16, fp16 or f32")
        self.prefill_blocks, self.decode_blocks = phase_blocks(config, chip, self.act_dtype, batch, prompt_len,
                                                               cache_len)
        params = abstract_params(config, JAX_DTYPES[self.weight_dtype], JAX_DTYPES[self.act_dtype])
        tokens = jax.ShapeDtypeStruct((batch, prompt_len), jnp.int32)
        self._prefill = TracedWorkload(prefill, params, tokens, config=config, blocks=self.prefill_blocks,
                                       cache_len=cache_len)
        self._prefill_args = (params, tokens)
        kv = jax.ShapeDtypeStruct((config.num_layers, batch, config.num_kv_heads, cache_len, config.head_dim),
                                  JAX_DTYPES[self.kv_dtype])
        self._decode_args = (params, jax.ShapeDtypeStruct((batch,), jnp.int32), KVCache(kv, kv))
        lengths = np.full(batch, prompt_len + 1, np.int32)
        self._decode = TracedWorkload(decode, *self._decode_args, lengths, config=config, blocks=self.decode_blocks)

    def prefill_costs(self) -> list[OpCost]:
        return price_workload(self._prefill.records(*self._prefill_args), self.chip)

    def decode_costs(self, lengths: np.ndarray) -> list[OpCost]:
        return price_workload(self._decode.records(*self._decode_args, np.asarray(lengths, np.int32)), self.chip)


def cost_run(config: LlamaConfig, chip: Chip, batch: int, prompt_len: int, decode_lengths: list[np.ndarray],
             weight_dtype: str = "bf16", act_dtype: str = "bf16", kv_dtype: str | None = None,
             chips: int | None = None, progress: Callable[[str], None] | None = None) -> RunCost:
    """Price prefill and every decode step (by the lengths each ran with) on ``chip``."""
    cache_len = int(max([prompt_len + 1] + [int(np.max(l)) for l in decode_lengths]))
    capacity = plan_capacity(config, chip, batch, cache_len, weight_dtype, kv_dtype or act_dtype, chips)
    tracer = ModelTracer(config, chip, batch, prompt_len, cache_len, weight_dtype, act_dtype, kv_dtype)
    pre = summarise(tracer.prefill_costs(), config.num_layers)
    link_prefill = interconnect_seconds(config, chip, capacity, batch * prompt_len, act_dtype)
    link_decode = interconnect_seconds(config, chip, capacity, batch, act_dtype)
    shard = capacity.tensor_parallel  # tensor parallel divides each layer's work; pipeline stages run in turn
    ttft = pre.time_s / shard + link_prefill
    steps, last = [], None
    for lengths in decode_lengths:
        last = summarise(tracer.decode_costs(lengths), config.num_layers)
        steps.append(last.time_s / shard + link_decode)
    if last is None:
        last = PhaseCost()
    tpot = float(np.mean(steps)) if steps else 0.0
    per_user = 1.0 / tpot if tpot else 0.0
    limit = last.bound if steps else pre.bound
    if link_decode > (last.time_s / shard if steps else 0.0):
        limit = "interconnect"
    if capacity.chips_needed > 1 and capacity.split == "pipeline" and limit != "interconnect":
        limit = f"capacity ({capacity.chips_needed} chips) + {limit}"
    if progress:
        progress(f"  {chip.name}: TTFT {ttft * 1e3:.3g} ms, TPOT {tpot * 1e3:.3g} ms")
    return RunCost(chip.name, batch, prompt_len, len(decode_lengths) + 1, ttft, tpot, steps, per_user,
                   per_user * batch, limit, capacity, link_prefill, link_decode, pre, last)
