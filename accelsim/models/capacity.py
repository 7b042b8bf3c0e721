"""Does a model fit a chip? Weights plus KV cache against memory, chips needed, the parallel split, its link time.

A ``Split`` is how the chips of one replica share the model: ``tensor`` chips split every layer
(Megatron-style; MoE experts spread over them with ``expert``), ``pipeline`` stages hold consecutive
layers. Tensor parallelism stays inside the chip's scale-up domain (``[scale_up]`` in the chip file:
an NVLink switch of 8, a TPU or Trainium torus, Groq's chip-to-chip network); beyond it come stages.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from accelsim.chips import Chip
from accelsim.cost.interconnect import collective_time
from accelsim.dtypes import dtype_bytes
from accelsim.errors import AccelsimError
from accelsim.models.config import LlamaConfig

MAX_TENSOR_PARALLEL = 8  # scale-up domain of a chip file without [scale_up]: one 8-GPU NVLink board


@dataclass(frozen=True)
class Split:
    """Chips of one replica: ``tensor`` ways per layer x ``pipeline`` stages; ``expert`` = ``tensor``
    spreads an MoE layer's experts over the stage's chips (all-to-all dispatch) instead of splitting each."""

    tensor: int = 1
    pipeline: int = 1
    expert: int = 1

    def __post_init__(self) -> None:
        for name in ("tensor", "pipeline", "expert"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise AccelsimError(f"split {name}: expected a whole number >= 1 (got {value!r})")
        if self.expert not in (1, self.tensor):
            raise AccelsimError(f"split expert: expected 1 or the tensor degree {self.tensor} (got {self.expert})")

    @property
    def chips(self) -> int:
        return self.tensor * self.pipeline

    @classmethod
    def parse(cls, text: str) -> "Split":
        """'TP8', 'TP8xPP2', 'EP8', 'PP72' (parts joined by 'x', any order, case-insensitive)."""
        ways = {"tp": 1, "pp": 1, "ep": 1}
        for part in text.lower().split("x"):
            key, digits = part[:2], part[2:]
            if key not in ways or not digits.isdigit() or len(digits) > 6:
                raise AccelsimError(f"split {text!r}: expected parts like TP8, PP2 or EP8 joined by 'x'")
            ways[key] = int(digits)
        if ways["ep"] > 1 and ways["tp"] == 1:
            ways["tp"] = ways["ep"]
        return cls(ways["tp"], ways["pp"], ways["ep"])

    @property
    def label(self) -> str:
        parts = ([f"TP{self.tensor}"] if self.tensor > 1 and self.expert == 1 else []) + \
                ([f"EP{self.expert}"] if self.expert > 1 else []) + ([f"PP{self.pipeline}"] if self.pipeline > 1 else [])
        return "x".join(parts) or "1 chip"


def scale_up_chips(chip: Chip) -> int:
    """The most chips tensor parallelism may span: the chip file's scale-up domain, else one 8-chip board."""
    return chip.scale_up.chips if chip.scale_up is not None else MAX_TENSOR_PARALLEL


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
    expert_parallel: int = 1

    @property
    def parallel(self) -> Split:
        return Split(self.tensor_parallel, self.pipeline_stages, self.expert_parallel)

    def to_dict(self) -> dict:
        return {**asdict(self), "split_label": self.parallel.label}


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
                  chips: int | None = None, split: Split | None = None) -> Capacity:
    """Chips needed for weights + KV cache of ``batch`` sequences of ``context`` tokens, and how to split.

    With ``split`` given, that split is checked (it must hold the weights and the cache, keep tensor
    parallelism inside the scale-up domain, and have no more stages than layers). Otherwise ``chips``
    (default: as few as fit) are split by ``default_split``. A requested ``chips`` no split could use is an error.
    """
    weights = parameter_count(config)[0] * dtype_bytes(weight_dtype)
    kv = kv_bytes_per_token(config, kv_dtype) * context * batch
    memory = chip.main_memory.total_capacity_bytes
    needed = max(1, math.ceil((weights + kv) / memory))
    name = config.name or "the model"
    need = (f"{name} needs {weights / 1e9:.1f} GB of weights + {kv / 1e9:.1f} GB of KV cache, "
            f"{needed} x {chip.name} ({memory / 1e9:.1f} GB each)")
    asked = split is not None or chips is not None
    if split is not None:
        _check_split(config, chip, split, needed, need)
        chips = split.chips
    elif chips is None:
        chips = needed  # a model too large for one chip is not an error: the capacity says how many it needs
    elif chips < needed:
        raise AccelsimError(f"--chips {chips} is impossible: {need}")
    elif chips > max(needed, scale_up_chips(chip) * config.num_layers):
        raise AccelsimError(
            f"--chips {chips} is more than {name} can use on {chip.name}: at most "
            f"{max(needed, scale_up_chips(chip) * config.num_layers)} ({scale_up_chips(chip)}-way tensor parallel "
            f"(the chip's scale-up domain) x {config.num_layers} pipeline stages, one per layer)")
    if asked and chips > 1 and not chip.links:
        raise AccelsimError(f"--chips {chips} is impossible: {chip.name}'s file lists no chip-to-chip link")
    split = split or default_split(chips, chip, config.num_layers)
    kind = {(True, True): "none", (False, True): "tensor", (True, False): "pipeline"}.get(
        (split.tensor == 1, split.pipeline == 1), "tensor+pipeline")
    free = chips * memory - weights
    max_batch = max(0, int(free // (kv_bytes_per_token(config, kv_dtype) * context)))
    return Capacity(weights, kv, memory, needed, chips, kind, split.tensor, split.pipeline, max_batch, split.expert)


def _check_split(config: LlamaConfig, chip: Chip, split: Split, needed: int, need: str) -> None:
    if split.chips < needed:
        raise AccelsimError(f"split {split.label} ({split.chips} chips) is impossible: {need}")
    if split.tensor > scale_up_chips(chip):
        raise AccelsimError(f"split {split.label}: {split.tensor}-way tensor parallelism exceeds {chip.name}'s "
                            f"scale-up domain of {scale_up_chips(chip)} chips")
    if split.tensor > config.num_heads:
        raise AccelsimError(f"split {split.label}: more tensor-parallel ways than {config.num_heads} attention heads")
    if split.pipeline > config.num_layers:
        raise AccelsimError(f"split {split.label}: more pipeline stages than {config.num_layers} layers")
    if split.expert > 1 and not config.is_moe:
        raise AccelsimError(f"split {split.label}: expert parallelism needs an MoE model ({config.name} is dense)")


def default_split(chips: int, chip: Chip, layers: int) -> Split:
    """The split ``estimate`` uses for ``chips`` chips.

    HBM chips: tensor parallel inside one scale-up domain (capped at 8, one board), then pipeline stages.
    SRAM-only chips: pipeline stages first (one or more layers per chip), tensor parallel only once every
    layer has its own stage, which is how Groq and Cerebras deploy big models. Never more stages than layers.
    """
    if chips == 1:
        return Split()
    if chip.is_sram_only:
        stages = min(chips, layers)
    else:
        ways = min(MAX_TENSOR_PARALLEL, scale_up_chips(chip))
        stages = min(max(1, math.ceil(chips / ways)), layers)
    return Split(math.ceil(chips / stages), stages)


def max_concurrency(config: LlamaConfig, chip: Chip, split: Split, context: int, weight_dtype: str,
                    kv_dtype: str) -> int:
    """Sequences of ``context`` tokens whose KV cache fits beside the weights on ``split``'s chips (0: none).

    KV heads fewer than the tensor degree are replicated, so each chip then holds more than its share."""
    weights = parameter_count(config)[0] * dtype_bytes(weight_dtype)
    replication = max(1.0, split.tensor / config.num_kv_heads)
    free = split.chips * chip.main_memory.total_capacity_bytes - weights
    per_sequence = kv_bytes_per_token(config, kv_dtype) * context * replication
    return max(0, int(free // per_sequence))


def candidate_splits(config: LlamaConfig, chip: Chip, max_chips: int, context: int = 1, weight_dtype: str = "bf16",
                     kv_dtype: str = "bf16") -> list[Split]:
    """Every split worth sweeping: power-of-two tensor degrees within the scale-up domain (and the heads),
    expert parallelism for MoE, and for each the three smallest stage counts (powers of two or divisors of
    the layer count) that hold the weights and one sequence of ``context`` tokens, up to ``max_chips``."""
    if max_chips < 1:
        raise AccelsimError(f"--max-chips {max_chips}: expected at least 1")
    limit = min(scale_up_chips(chip), config.num_heads, max_chips) if chip.links else 1
    ways = [2 ** i for i in range(16) if 2 ** i <= limit]
    stage_counts = sorted({d for d in range(1, config.num_layers + 1) if config.num_layers % d == 0}
                          | {2 ** i for i in range(16) if 2 ** i <= config.num_layers})
    splits = []
    for tensor in ways:
        experts = (1, tensor) if config.is_moe and tensor > 1 else (1,)
        fitting = [p for p in stage_counts if tensor * p <= max_chips and (p == 1 or chip.links)
                   and max_concurrency(config, chip, Split(tensor, p), context, weight_dtype, kv_dtype) >= 1]
        for pipeline in fitting[:3]:
            splits.extend(Split(tensor, pipeline, e) for e in experts)
    return splits


def interconnect_seconds(config: LlamaConfig, chip: Chip, capacity: Capacity, tokens: int, act_dtype: str,
                         tensor_counted: bool = False) -> float:
    """Link time of one forward pass over ``tokens`` rows (prefill: batch*prompt, decode: batch).

    Tensor parallel (unless ``tensor_counted``: the traced sharded program already holds its all-reduces):
    a ring all-reduce of the activations after attention and after the MLP, per layer; with expert
    parallelism the MLP's all-reduce becomes an all-to-all dispatch and combine of each token's
    ``experts_per_token`` copies (``accelsim.cost.interconnect``, with the chip's per-hop latency).
    Pipeline: one activation hand-off per stage boundary over one link, with its latency.
    """
    if capacity.chips == 1 or not chip.links:
        return 0.0
    link = chip.links[0]
    activation = tokens * config.hidden_size * dtype_bytes(act_dtype)
    seconds = 0.0
    n = capacity.tensor_parallel
    if n > 1 and not tensor_counted:
        all_reduce = collective_time("all_reduce", activation, n, chip).time_s
        if capacity.expert_parallel > 1:
            routed = activation * max(config.experts_per_token, 1)
            mlp = 2 * collective_time("all_to_all", routed, n, chip).time_s
        else:
            mlp = all_reduce
        seconds += config.num_layers * (all_reduce + mlp)
    if capacity.pipeline_stages > 1:
        seconds += (capacity.pipeline_stages - 1) * (activation / link.bandwidth_bytes_per_s + link.latency_s)
    return seconds
