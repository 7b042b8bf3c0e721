"""Does a model fit a chip? Weights plus KV cache against memory, chips needed, the split, and its link time."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from accelsim.chips import Chip
from accelsim.cost.interconnect import collective_time
from accelsim.dtypes import dtype_bytes
from accelsim.errors import AccelsimError
from accelsim.models.config import LlamaConfig

MAX_TENSOR_PARALLEL = 8  # one NVLink / ICI domain; beyond it we split layers into pipeline stages


@dataclass(frozen=True)
class Capacity:
    """Memory footprint and the multi-chip split that holds it."""

    weight_bytes: float
    kv_bytes: float
    chip_memory_bytes: float
    chips_needed: int
    chips: int
    split: str            # "none", "tensor", "pipeline", "tensor+pipeline"
    tensor_parallel: int
    pipeline_stages: int
    max_batch_at_context: int

    def to_dict(self) -> dict:
        return asdict(self)


def parameter_count(config: LlamaConfig) -> tuple[float, float]:
    """(all parameters, parameters one token reads), counting MoE experts apart."""
    c = config
    attn = c.hidden_size * (c.q_size + 2 * c.kv_size) + c.q_size * c.hidden_size
    expert = 3 * c.hidden_size * c.intermediate_size
    experts = max(c.num_experts, 1)
    active = max(c.experts_per_token, 1)
    router = c.hidden_size * c.num_experts
    norms = 2 * c.hidden_size
    per_layer_total = attn + experts * expert + router + norms
    per_layer_active = attn + active * expert + router + norms
    embed = c.vocab_size * c.hidden_size * (1 if c.tie_embeddings else 2)
    return c.num_layers * per_layer_total + embed + c.hidden_size, c.num_layers * per_layer_active + embed + c.hidden_size


def kv_bytes_per_token(config: LlamaConfig, kv_dtype: str) -> float:
    """K and V of every layer for one token."""
    return 2 * config.num_layers * config.kv_size * dtype_bytes(kv_dtype)


def plan_capacity(config: LlamaConfig, chip: Chip, batch: int, context: int, weight_dtype: str, kv_dtype: str,
                  chips: int | None = None) -> Capacity:
    """Chips needed for weights + KV cache of ``batch`` sequences of ``context`` tokens, and how to split.

    Up to 8 chips split each layer (tensor parallel) when the chip has links; SRAM-only chips and
    larger counts split layers into pipeline stages, which is how Groq and Cerebras deploy big models.
    A requested ``chips`` beyond both what is needed and 8 x layers is an error: no split could use them.
    """
    weights = parameter_count(config)[0] * dtype_bytes(weight_dtype)
    kv = kv_bytes_per_token(config, kv_dtype) * context * batch
    memory = chip.main_memory.total_capacity_bytes
    needed = max(1, math.ceil((weights + kv) / memory))
    if chips is None:
        chips = needed
    elif chips < needed:
        raise AccelsimError(
            f"--chips {chips} is impossible: {config.name or 'the model'} needs {weights / 1e9:.1f} GB of weights + "
            f"{kv / 1e9:.1f} GB of KV cache, {needed} x {chip.name} ({memory / 1e9:.1f} GB each)")
    elif chips > max(needed, MAX_TENSOR_PARALLEL * config.num_layers):
        raise AccelsimError(
            f"--chips {chips} is more than {config.name or 'the model'} can use on {chip.name}: at most "
            f"{max(needed, MAX_TENSOR_PARALLEL * config.num_layers)} ({MAX_TENSOR_PARALLEL}-way tensor parallel, "
            f"accelsim.models.capacity.MAX_TENSOR_PARALLEL, x {config.num_layers} pipeline stages, one per layer)")
    elif chips > 1 and not chip.links:
        raise AccelsimError(f"--chips {chips} is impossible: {chip.name}'s file lists no chip-to-chip link")
    tensor, stages = _split(chips, chip, config.num_layers)
    split = {(True, True): "none", (False, True): "tensor", (True, False): "pipeline"}.get(
        (tensor == 1, stages == 1), "tensor+pipeline")
    free = chips * memory - weights
    max_batch = max(0, int(free // (kv_bytes_per_token(config, kv_dtype) * context)))
    return Capacity(weights, kv, memory, needed, chips, split, tensor, stages, max_batch)


def _split(chips: int, chip: Chip, layers: int) -> tuple[int, int]:
    """(tensor-parallel ways, pipeline stages) for ``chips`` chips.

    HBM chips: tensor parallel inside one 8-chip domain, then pipeline stages. SRAM-only chips:
    pipeline stages first (one or more layers per chip), tensor parallel only once every layer
    has its own stage. Never more stages than layers.
    """
    if chips == 1:
        return 1, 1
    if chip.is_sram_only:
        stages = min(chips, layers)
    else:
        stages = min(max(1, math.ceil(chips / MAX_TENSOR_PARALLEL)), layers)
    return math.ceil(chips / stages), stages


def interconnect_seconds(config: LlamaConfig, chip: Chip, capacity: Capacity, tokens: int, act_dtype: str,
                         tensor_counted: bool = False) -> float:
    """Link time of one forward pass over ``tokens`` rows (prefill: batch*prompt, decode: batch).

    Tensor parallel (unless ``tensor_counted``: the traced sharded program already holds its all-reduces):
    two ring all-reduces of the activations per layer (``accelsim.cost.interconnect``). Pipeline: one
    activation hand-off per stage boundary over one link, with its latency.
    """
    if capacity.chips == 1 or not chip.links:
        return 0.0
    link = chip.links[0]
    activation = tokens * config.hidden_size * dtype_bytes(act_dtype)
    seconds = 0.0
    n = capacity.tensor_parallel
    if n > 1 and not tensor_counted:
        seconds += config.num_layers * 2 * collective_time("all_reduce", activation, n, chip).time_s
    if capacity.pipeline_stages > 1:
        seconds += (capacity.pipeline_stages - 1) * (activation / link.bandwidth_bytes_per_s + link.latency_s)
    return seconds
