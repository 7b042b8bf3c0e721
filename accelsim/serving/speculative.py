"""Speculative decoding priced on the target's chips: ``k`` draft steps, then one verification of k + 1 tokens.

With per-token acceptance ``a`` (independent, as Leviathan et al. 2023 assume), one step emits
(1 - a^(k+1)) / (1 - a) tokens on average (k + 1 when a = 1). A step costs k draft decode steps (the draft
model at the same batch, same chips, same split, over the same growing context) plus one verification.

Verification is priced as the target running k + 1 new tokens per sequence: one pass of a prefill of
k + 1 tokens at the same batch (every matmul at M = batch x (k + 1), attention among the new tokens, the
links) plus reading the KV cache once, taken from the target's own decode step (its ``attention/decode*``
kernels, scaled by context from the last priced step to the mean one). It is never cheaper than one plain
decode step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from accelsim.chips import Chip
from accelsim.dtypes import dtype_bytes
from accelsim.errors import AccelsimError
from accelsim.models.capacity import Split, kv_bytes_per_token, parameter_count
from accelsim.models.config import LlamaConfig, load_config
from accelsim.models.estimate import decode_lengths
from accelsim.serving.point import ServingPoint, from_run

if TYPE_CHECKING:
    from accelsim.serving.frontier import Workload


def expected_tokens(acceptance: float, draft_len: int) -> float:
    """Mean tokens per speculative step: (1 - a^(k+1)) / (1 - a), which is k + 1 at a = 1."""
    if acceptance == 1.0:
        return float(draft_len + 1)
    return (1.0 - acceptance ** (draft_len + 1)) / (1.0 - acceptance)


@dataclass(frozen=True)
class Speculation:
    """The draft model's name, its per-token acceptance ``a`` in [0, 1) and draft length ``k`` >= 1."""

    draft: str
    acceptance: float
    draft_len: int

    def __post_init__(self) -> None:
        if not (isinstance(self.acceptance, (int, float)) and math.isfinite(self.acceptance)
                and 0.0 <= self.acceptance < 1.0):
            raise AccelsimError(f"--acceptance {self.acceptance}: expected a rate in [0, 1)")
        if not isinstance(self.draft_len, int) or self.draft_len < 1:
            raise AccelsimError(f"--draft-len {self.draft_len}: expected a whole number >= 1")

    @property
    def tokens_per_step(self) -> float:
        return expected_tokens(self.acceptance, self.draft_len)


def kv_read_s(run: Any, isl: int, osl: int) -> float:
    """Seconds one decode step of ``run`` spends in its decode-attention kernels (they read the KV cache),
    from its last priced step scaled by context to the mean priced step's (``decode_lengths``)."""
    ops = getattr(getattr(run, "decode", None), "ops", ()) or ()
    last = sum(op.time_s for op in ops if op.name.startswith("attention/decode"))
    lengths = [int(l[0]) for l in decode_lengths(isl, osl)]
    return last * (sum(lengths) / len(lengths)) / lengths[-1] if lengths else last


def verify_s(target: Any, verify_prefill: Any, isl: int, osl: int) -> float:
    """One verification step: one pass of the k + 1-token prefill (its ops and links, not its TTFT: a verify
    step is replayed like a decode step, so launches do not bind and the pipeline is already full) plus one
    KV read, and never less than one plain decode step."""
    one_pass = float(verify_prefill.prefill.time_s) + float(verify_prefill.interconnect_prefill_s)
    return max(one_pass + kv_read_s(target, isl, osl), float(target.tpot_s or 0.0))


def speculative_point(plain: ServingPoint, target: Any, draft: Any, verify_prefill: Any,
                      speculation: Speculation) -> ServingPoint:
    """``plain`` (the target alone) made speculative: TTFT adds the draft's prefill, TPOT is a step's time
    over the tokens it emits. ``target``, ``draft`` and ``verify_prefill`` are ``RunCost``s."""
    if plain.osl < 2:
        return plain
    draft_step = float(draft.tpot_s or 0.0)
    verify = verify_s(target, verify_prefill, plain.isl, plain.osl)
    step = speculation.draft_len * draft_step + verify
    tpot = step / speculation.tokens_per_step
    extra = dict(plain.extra) | {"draft_model": speculation.draft, "acceptance": speculation.acceptance,
                                 "draft_len": speculation.draft_len, "tokens_per_step": speculation.tokens_per_step,
                                 "draft_step_s": draft_step, "verify_s": verify, "plain_tpot_s": plain.tpot_s}
    return replace(plain, ttft_s=plain.ttft_s + float(draft.ttft_s), tpot_s=tpot, extra=tuple(extra.items()))


def draft_config(name: str, target: LlamaConfig) -> LlamaConfig:
    """``--draft-model``: a model name or config path, or ``self:N`` (the target's first N layers, its final
    norm and LM head: a self-speculative draft, as ``accelsim.serving.acceptance`` measures)."""
    if name.startswith("self:"):
        layers = name.removeprefix("self:")
        if not layers.isdigit() or not 1 <= int(layers) < target.num_layers:
            raise AccelsimError(f"--draft-model {name}: expected self:N with N from 1 to {target.num_layers - 1}")
        return dataclasses.replace(target, num_layers=int(layers), name=f"{target.name}[:{layers}]")
    draft = load_config(name)
    if draft.vocab_size != target.vocab_size:
        raise AccelsimError(f"--draft-model {name}: its vocabulary ({draft.vocab_size}) is not the target's "
                            f"({target.vocab_size}); a draft must propose the target's tokens")
    return draft


def draft_split(split: Split, draft: LlamaConfig) -> Split:
    """The draft spread over the target's chips as far as its heads and layers allow."""
    tensor = min(split.tensor, draft.num_heads)
    return Split(tensor, min(split.pipeline, draft.num_layers), tensor if draft.is_moe and split.expert > 1 else 1)


def joint_concurrency(workload: Workload, chip: Chip, split: Split, draft: LlamaConfig) -> int:
    """Sequences whose target and draft KV caches both fit beside both models' weights on ``split``'s chips."""
    def weights(config: LlamaConfig) -> float:
        return parameter_count(config)[0] * dtype_bytes(workload.weight_dtype)

    def per_sequence(config: LlamaConfig, tensor: int) -> float:
        replication = max(1.0, tensor / config.num_kv_heads)
        return kv_bytes_per_token(config, workload.kv_dtype) * workload.context * replication

    free = split.chips * chip.main_memory.total_capacity_bytes - weights(workload.config) - weights(draft)
    need = per_sequence(workload.config, split.tensor) + per_sequence(draft, draft_split(split, draft).tensor)
    return max(0, int(free // need))


def speculative_pricer(speculation: Speculation, draft: LlamaConfig
                       ) -> Callable[[Workload, Chip, Split, int, Any], ServingPoint | None]:
    """The ``point`` argument of ``accelsim.serving.frontier.sweep``: price the draft and the verification
    beside each target point (None where the draft's memory leaves no room for that concurrency)."""
    def point(workload: Workload, chip: Chip, split: Split, batch: int, run: Any) -> ServingPoint | None:
        if batch > joint_concurrency(workload, chip, split, draft):
            return None
        plain = from_run(run, split.label, split.chips, workload.isl, workload.osl)
        try:
            drafted = workload.price(chip, draft_split(split, draft), batch, config=draft)
        except AccelsimError:  # the draft's own split (fewer stages than the target's) cannot hold its cache
            return None
        verify = workload.price(chip, split, batch, isl=speculation.draft_len + 1, osl=1)
        return speculative_point(plain, run, drafted, verify, speculation)
    return point
