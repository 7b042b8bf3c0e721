"""Measure a self-speculative draft's acceptance rate on SmolLM2-135M, on this machine, through our kernels.

The target (all layers) generates greedily with its KV cache. The draft is the target's first N layers,
its final norm and its tied LM head. Under greedy verification a drafted token is accepted exactly when it
equals the target's, and every accepted draft token was conditioned on the target's own tokens, so one
teacher-forced pass of the draft over prompt + continuation gives every acceptance decision: the per-token
acceptance rate is the fraction of positions where the draft's argmax equals the target's next token. The
tokens per speculative step are also counted by walking those decisions with draft length k (accept the
run of agreements, at most k, then one token from the target), to compare with (1 - a^(k+1)) / (1 - a).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from accelsim.models.config import LlamaConfig

PROMPTS = (
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain how a bicycle works.",
    "List three uses of copper.",
    "Why is the sky blue?",
    "Give me a recipe for pancakes.",
    "What does a compiler do?",
    "Describe a cat to someone who has never seen one.",
)


@dataclass(frozen=True)
class Acceptance:
    """Per-token acceptance of a ``draft_layers``-layer draft, and measured tokens per step at ``draft_len``."""

    draft_layers: int
    target_layers: int
    draft_len: int
    prompts: int
    positions: int
    acceptance: float
    tokens_per_step_measured: float

    def to_dict(self) -> dict:
        from accelsim.serving.speculative import expected_tokens

        return {**self.__dict__, "tokens_per_step_formula": expected_tokens(min(self.acceptance, 1 - 1e-12),
                                                                            self.draft_len)}


def tokens_per_step(agree: Sequence[bool], draft_len: int) -> float:
    """Mean tokens emitted per speculative step over one sequence of greedy acceptance decisions."""
    i, steps = 0, 0
    while i < len(agree):
        run = 0
        while run < draft_len and i + run < len(agree) and agree[i + run]:
            run += 1
        i += run + 1
        steps += 1
    return len(agree) / steps if steps else 0.0


def truncated(config: LlamaConfig, params: dict, layers: int) -> tuple[LlamaConfig, dict]:
    """The first ``layers`` layers of a stacked model, its final norm and its LM head."""
    import dataclasses

    import jax

    head = {**params, "layers": jax.tree.map(lambda w: w[:layers], params["layers"])}
    return dataclasses.replace(config, num_layers=layers), head


def measure(draft_layers: Sequence[int], draft_len: int = 4, prompts: Sequence[str] = PROMPTS,
            new_tokens: int = 48, progress: Callable[[str], None] = lambda m: None) -> list[Acceptance]:
    """Run SmolLM2-135M greedily on each prompt, then each draft teacher-forced: one ``Acceptance`` per draft."""
    import jax.numpy as jnp

    from accelsim.models.llama import Generator, prefill, stack_params
    from accelsim.models.plans import phase_blocks
    from accelsim.models.session import host_chip
    from accelsim.models.tokenizer import load_smollm2_tokenizer
    from accelsim.models.weights import load_smollm2

    config, raw = load_smollm2()
    params = stack_params(raw, config)
    tokenizer = load_smollm2_tokenizer()
    host = host_chip(progress)
    agree: dict[int, list[list[bool]]] = {n: [] for n in draft_layers}
    for index, prompt in enumerate(prompts):
        ids = tokenizer.encode(tokenizer.apply_chat_template(prompt))
        blocks = phase_blocks(config, host, "f32", 1, len(ids), len(ids) + new_tokens)
        generated = Generator(config, *blocks).generate(params, np.asarray([ids]), new_tokens,
                                                        eos_id=tokenizer.eos_id).new_tokens[0]
        sequence = np.asarray([ids + generated.tolist()], np.int32)
        progress(f"prompt {index + 1}/{len(prompts)}: {len(generated)} target tokens")
        for layers in draft_layers:
            draft_config, draft_params = truncated(config, params, layers)
            draft_blocks = phase_blocks(draft_config, host, "f32", 1, sequence.shape[1], sequence.shape[1])[0]
            logits, _ = prefill(draft_params, jnp.asarray(sequence), draft_config, draft_blocks,
                                cache_len=sequence.shape[1], all_logits=True)
            guesses = np.asarray(logits[0].argmax(-1))[len(ids) - 1:-1]
            agree[layers].append((guesses == generated).tolist())
    return [Acceptance(n, config.num_layers, draft_len, len(prompts), sum(len(a) for a in agree[n]),
                       float(np.mean(np.concatenate(agree[n]))),
                       float(sum(len(a) for a in agree[n]) / sum(len(a) / tokens_per_step(a, draft_len)
                                                                   for a in agree[n])))
            for n in draft_layers]
