"""Cost of a model run on a chip: trace the same model code with the chip's blocks, price every op.

Weights are never needed: parameters are ``jax.ShapeDtypeStruct``s, so the same path serves the
SmolLM2 run that just executed and a Llama-405B estimate. Decode steps are priced with the lengths
each step actually ran with (the decode kernel's bytes depend on them).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from accelsim.chips import Chip
from accelsim.cost.result import Cost
from accelsim.dtypes import canonical_dtype
from accelsim.errors import AccelsimError
from accelsim.models.capacity import Capacity, Split, interconnect_seconds, plan_capacity
from accelsim.models.config import LlamaConfig
from accelsim.models.llama import abstract_params, decode, prefill
from accelsim.models.plans import phase_blocks
from accelsim.models.sharding import abstract_mesh, local_config, shardable, sharded_decode, sharded_prefill
from accelsim.trace.price import OpCost, price_workload
from accelsim.trace.workload import TracedWorkload
from kernels.decode import KVCache

JAX_DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16, "fp8": jnp.float8_e4m3fn,
              "int8": jnp.int8, "int4": jnp.int4, "fp4": jnp.float4_e2m1fn}


@dataclass(frozen=True)
class OpRow:
    """One op of a phase: its records summed over their calls (per run), and whether it runs once per layer.
    ``launched``: each call is a kernel launch of its own (our kernels, XLA matmuls, collectives); XLA's
    elementwise ops are taken as fused into their neighbours' launches."""

    name: str
    cost: Cost
    per_layer: bool
    launched: bool = True

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
    """One chip's cost of a run. With a single new token there is no decode step: ``tpot_s`` is None (not
    applicable) and tokens/s per user is that one token over the TTFT."""

    chip: str
    batch: int
    prompt_len: int
    new_tokens: int
    ttft_s: float
    tpot_s: float | None
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
    launched: dict[str, bool] = {}
    for op in costs:
        name = _op_name(op)
        grouped[name] = grouped.get(name, Cost()) + op.cost
        launched[name] = op.kind != "xla_op"
    rows = sorted((OpRow(name, cost, cost.calls >= num_layers, launched[name]) for name, cost in grouped.items()),
                  key=lambda r: -r.cost.time_s)
    return PhaseCost(sum(grouped.values(), Cost()), tuple(rows))


def tensor_parallel_share(config: LlamaConfig, ways: int) -> LlamaConfig:
    """One chip's share of every layer when ``ways`` chips split it (Megatron-style tensor parallelism):
    query heads, KV heads (replicated when there are fewer than ``ways``), the MLP's intermediate width (per
    expert) and the vocabulary (the LM head) divided, rounding up; the hidden width whole."""
    if ways == 1:
        return config
    kv_heads = math.ceil(config.num_kv_heads / ways)
    group = config.num_heads // config.num_kv_heads
    return dataclasses.replace(config, num_heads=kv_heads * group, num_kv_heads=kv_heads,
                               intermediate_size=math.ceil(config.intermediate_size / ways),
                               vocab_size=math.ceil(config.vocab_size / ways))


class ModelTracer:
    """The model's prefill and decode step traced abstractly with one chip's blocks, ready to price.

    With ``tensor_parallel`` > 1 the traced program is the sharded one (``accelsim.models.sharding``,
    over a device-free mesh): every chip's kernels at their local shapes and the collectives between them,
    counted from the program. A model that does not split evenly (MoE, or KV heads the degree does not
    divide) is traced as one chip's share instead (``tensor_parallel_share``), its collectives by formula.
    """

    def __init__(self, config: LlamaConfig, chip: Chip, batch: int, prompt_len: int, cache_len: int,
                 weight_dtype: str = "bf16", act_dtype: str = "bf16", kv_dtype: str | None = None,
                 low_precision_compute: bool = False, tensor_parallel: int = 1, expert_parallel: int = 1) -> None:
        self.config, self.chip = config, chip
        self.batch, self.prompt_len, self.cache_len = batch, prompt_len, cache_len
        self.act_dtype = canonical_dtype(act_dtype)
        self.weight_dtype = canonical_dtype(weight_dtype)
        self.kv_dtype = canonical_dtype(kv_dtype or act_dtype)
        if self.kv_dtype not in (self.act_dtype, "fp8"):
            raise AccelsimError(f"KV-cache dtype {self.kv_dtype}: expected the activation dtype {self.act_dtype} "
                                "or fp8 (stored in fp8, widened to the activations' dtype block by block in the kernel)")
        if self.act_dtype not in ("f32", "bf16", "fp16"):
            raise AccelsimError(f"activation dtype {act_dtype} cannot run our kernels: use bf16, fp16 or f32")
        # expert parallelism is traced as one chip's share (its experts' work), its all-to-alls by formula
        self.sharded = tensor_parallel > 1 and expert_parallel == 1 and shardable(config, tensor_parallel)
        traced = config if self.sharded or tensor_parallel == 1 else tensor_parallel_share(config, tensor_parallel)
        per_chip = local_config(config, tensor_parallel) if self.sharded else traced
        compute = self.weight_dtype if low_precision_compute else None
        self.prefill_blocks, self.decode_blocks = phase_blocks(per_chip, chip, self.act_dtype, batch, prompt_len,
                                                               cache_len, compute_dtype=compute,
                                                               weight_dtype=self.weight_dtype)
        mesh = {"mesh": abstract_mesh(tensor_parallel)} if self.sharded else {}
        run_prefill, run_decode = (sharded_prefill, sharded_decode) if self.sharded else (prefill, decode)
        params = abstract_params(traced, JAX_DTYPES[self.weight_dtype], JAX_DTYPES[self.act_dtype])
        tokens = jax.ShapeDtypeStruct((batch, prompt_len), jnp.int32)
        self._prefill = TracedWorkload(run_prefill, params, tokens, config=traced, blocks=self.prefill_blocks,
                                       cache_len=cache_len, **mesh)
        self._prefill_args = (params, tokens)
        kv = jax.ShapeDtypeStruct((traced.num_layers, batch, traced.num_kv_heads, cache_len, traced.head_dim),
                                  JAX_DTYPES[self.kv_dtype])
        self._decode_args = (params, jax.ShapeDtypeStruct((batch,), jnp.int32), KVCache(kv, kv))
        lengths = np.full(batch, prompt_len + 1, np.int32)
        self._decode = TracedWorkload(run_decode, *self._decode_args, lengths, config=traced,
                                      blocks=self.decode_blocks, **mesh)

    def prefill_costs(self) -> list[OpCost]:
        return price_workload(self._prefill.records(*self._prefill_args), self.chip)

    def decode_costs(self, lengths: np.ndarray) -> list[OpCost]:
        return price_workload(self._decode.records(*self._decode_args, np.asarray(lengths, np.int32)), self.chip)


def micro_batch(batch: int, capacity: Capacity) -> int:
    """Sequences per pipeline micro-batch: the batch is cut into as many micro-batches as there are stages
    (at most one per sequence), so every stage works on one while the others work on the rest."""
    return math.ceil(batch / min(batch, capacity.pipeline_stages))


def launch_bound_s(phase: PhaseCost, chip: Chip) -> float:
    """The phase's time when the host issues each kernel: no kernel starts before its launch, so each
    call takes at least the chip file's launch overhead (what a CUDA graph, one launch per step, removes)."""
    overhead = chip.launch_overhead_s
    if not overhead:
        return 0.0
    return sum(row.calls * max(row.time_s / row.calls, overhead) if row.launched and row.calls else row.time_s
               for row in phase.ops)


def compose_run(config: LlamaConfig, chip: Chip, capacity: Capacity, batch: int, prompt_len: int,
                prefill: PhaseCost, decode_steps: Sequence[PhaseCost], act_dtype: str = "bf16",
                tensor_counted: bool = False, cuda_graphs: bool = True) -> RunCost:
    """One run's TTFT, TPOT and throughput from its phases, each priced at ``micro_batch`` sequences.

    One token of a sequence passes every pipeline stage in turn (the traced pass is all layers), plus the
    links; with ``m`` micro-batches in flight over ``p`` stages the batch's tokens come out together, so
    TPOT is one pass of a micro-batch and the whole batch advances a token per TPOT. Prefill fills the
    pipeline: the last micro-batch's prompt finishes (p + m - 1) / p passes after the first starts.
    Kernel launches bind when a phase is not one CUDA graph (prefill never is; decode unless ``cuda_graphs``)."""
    micro = micro_batch(batch, capacity)
    in_flight = math.ceil(batch / micro)
    stages = capacity.pipeline_stages
    link_prefill = interconnect_seconds(config, chip, capacity, micro * prompt_len, act_dtype, tensor_counted)
    link_decode = interconnect_seconds(config, chip, capacity, micro, act_dtype, tensor_counted)
    prefill_pass = max(prefill.time_s, launch_bound_s(prefill, chip))
    ttft = prefill_pass * (stages + in_flight - 1) / stages + link_prefill
    steps, limit = [], prefill.bound
    for step in decode_steps:
        launched = 0.0 if cuda_graphs else launch_bound_s(step, chip)
        steps.append(max(step.time_s, launched) + link_decode)
        limit = "launch" if launched > step.time_s else step.bound
        if link_decode > max(step.time_s, launched):
            limit = "interconnect"
    last = decode_steps[-1] if decode_steps else PhaseCost()
    tpot = float(np.mean(steps)) if steps else None
    per_user = 1.0 / (tpot if tpot is not None else ttft) if (tpot or ttft) else 0.0
    if capacity.chips_needed > 1 and capacity.split == "pipeline" and limit != "interconnect":
        limit = f"capacity ({capacity.chips_needed} chips) + {limit}"
    return RunCost(chip.name, batch, prompt_len, len(decode_steps) + 1, ttft, tpot, steps, per_user,
                   per_user * batch, limit, capacity, link_prefill, link_decode, prefill, last)


def cost_run(config: LlamaConfig, chip: Chip, batch: int, prompt_len: int, decode_lengths: list[np.ndarray],
             weight_dtype: str = "bf16", act_dtype: str = "bf16", kv_dtype: str | None = None,
             chips: int | None = None, progress: Callable[[str], None] | None = None,
             low_precision_compute: bool = False, split: Split | None = None,
             cuda_graphs: bool = True) -> RunCost:
    """Price prefill and every decode step (by the lengths each ran with) on ``chip``; with
    ``low_precision_compute`` the matmuls multiply in the weight dtype instead of widening the weights.
    ``split`` fixes the parallel split (default: ``chips``, or as few as fit, split by ``default_split``).
    Phases are traced at the pipeline's micro-batch (the first ``micro_batch`` sequences' lengths)."""
    cache_len = int(max([prompt_len + 1] + [int(np.max(l)) for l in decode_lengths]))
    capacity = plan_capacity(config, chip, batch, cache_len, weight_dtype, kv_dtype or act_dtype, chips, split)
    micro = micro_batch(batch, capacity)
    # Each chip of a tensor-parallel group runs its own share of every layer (traced as the sharded program);
    # pipeline stages run their layers in turn, so one token passes every layer once.
    tracer = ModelTracer(config, chip, micro, prompt_len, cache_len, weight_dtype, act_dtype, kv_dtype,
                         low_precision_compute, capacity.tensor_parallel, capacity.expert_parallel)
    pre = summarise(tracer.prefill_costs(), config.num_layers)
    steps = [summarise(tracer.decode_costs(np.asarray(l)[:micro]), config.num_layers) for l in decode_lengths]
    run = compose_run(config, chip, capacity, batch, prompt_len, pre, steps, act_dtype, tracer.sharded, cuda_graphs)
    if progress:
        progress(f"  {chip.name}: TTFT {run.ttft_s * 1e3:.3g} ms, TPOT "
                 f"{'n/a (one new token)' if run.tpot_s is None else f'{run.tpot_s * 1e3:.3g} ms'}")
    return run
