"""Llama-family architecture configs: one frozen value read from a Hugging Face ``config.json`` or a GGUF header.

Presets of real models live in ``configs/NAME.json`` in Hugging Face's own format, each with a
``_source`` key naming where the numbers come from; ``load_config`` takes a preset name or a path.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.errors import AccelsimError

CONFIG_DIR = Path(__file__).parent / "configs"
MODEL_TYPES = ("llama", "mistral", "mixtral")

# Hugging Face's defaults for keys a config.json may leave out (LlamaConfig / MistralConfig).
_HF_DEFAULT_ROPE_THETA = 10000.0

# The largest value of each size a config may give: far past any published model (Llama-3.1-405B has
# hidden 16384, 126 layers, 128 heads, vocab 128256; DeepSeek-V3 256 experts), small enough to model.
LIMITS = {"vocab_size": 1 << 24, "hidden_size": 1 << 17, "intermediate_size": 1 << 20, "num_layers": 1024,
          "num_heads": 1024, "num_kv_heads": 1024, "head_dim": 1024, "max_position_embeddings": (1 << 31) - 1,
          "num_experts": 1024, "experts_per_token": 1024}


@dataclass(frozen=True)
class LlamaConfig:
    """The shape of a Llama-family decoder: RMSNorm, RoPE, GQA attention, SwiGLU MLP (or a top-k MoE of them).

    ``num_experts == 0`` means a dense MLP. ``rope_scaling`` is ``None`` or a sorted tuple of the
    Hugging Face ``rope_scaling`` items (kept hashable so the config can be a static jit argument).
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float
    rms_norm_eps: float
    max_position_embeddings: int
    tie_embeddings: bool
    num_experts: int = 0
    experts_per_token: int = 0
    rope_scaling: tuple[tuple[str, Any], ...] | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = self.name or "config"
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                    "head_dim", "max_position_embeddings"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise AccelsimError(f"{where}: '{key}' must be a positive integer (got {_short(value)})")
        for key, limit in LIMITS.items():
            if getattr(self, key) > limit:
                raise AccelsimError(f"{where}: '{key}' = {_short(getattr(self, key))} is over the limit of {limit} "
                                    f"(accelsim.models.config.LIMITS)")
        if self.head_dim % 2:
            raise AccelsimError(f"{where}: 'head_dim' ({self.head_dim}) must be even: RoPE rotates pairs of dims")
        for key in ("rope_theta", "rms_norm_eps"):
            value = getattr(self, key)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not value > 0 or not math.isfinite(value):
                raise AccelsimError(f"{where}: '{key}' must be a positive number (got {value!r})")
        if self.num_heads % self.num_kv_heads:
            raise AccelsimError(f"{where}: num_heads ({self.num_heads}) must be a multiple of "
                                f"num_kv_heads ({self.num_kv_heads})")
        if self.num_experts < 0 or self.experts_per_token < 0 or self.experts_per_token > self.num_experts:
            raise AccelsimError(f"{where}: experts_per_token ({self.experts_per_token}) must be between 0 and "
                                f"num_experts ({self.num_experts})")
        if (self.num_experts == 0) != (self.experts_per_token == 0):
            raise AccelsimError(f"{where}: num_experts and experts_per_token must both be 0 (dense) or both positive")

    @property
    def q_size(self) -> int:
        """Width of the query projection output, ``num_heads * head_dim``."""
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of the key (and the value) projection output, ``num_kv_heads * head_dim``."""
        return self.num_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @classmethod
    def from_hf_json(cls, path: str | os.PathLike) -> LlamaConfig:
        """Read a Hugging Face ``config.json`` of a llama, mistral or mixtral model.

        Every problem raises ``AccelsimError`` on one line naming the file and the key. Keys starting
        with ``_`` (such as our ``_source``) and keys that do not shape the network are ignored.
        """
        path = Path(path)
        if not path.exists():
            raise AccelsimError(f"model config {path} does not exist")
        if not path.is_file():
            raise AccelsimError(f"model config {path} is not a file (a directory? give its config.json)")
        try:
            data = json.loads(path.read_bytes())
        except OSError as exc:
            raise AccelsimError(f"model config {path} cannot be read ({exc.strerror or exc})") from None
        except (ValueError, RecursionError) as exc:  # bad JSON, not UTF-8, an integer too long, nested too deep
            raise AccelsimError(f"model config {path}: not valid JSON ({str(exc).splitlines()[0][:200]})") from None
        return cls.from_hf_dict(data, where=str(path), name=path.stem)

    @classmethod
    def from_hf_dict(cls, data: Any, where: str = "<dict>", name: str = "") -> LlamaConfig:
        """The same as ``from_hf_json`` for an already parsed dict."""
        if not isinstance(data, dict):
            raise AccelsimError(f"model config {where}: the top level must be a JSON object")

        def get(key: str, kind: type, default: Any = ...) -> Any:
            if key not in data or data[key] is None:
                if default is ...:
                    raise AccelsimError(f"model config {where}: missing key '{key}'")
                return default
            value = data[key]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind is int:
                ok = ok and (isinstance(value, int) or value.is_integer())
            elif kind is bool:
                ok = isinstance(value, bool)
            elif kind is str:
                ok = isinstance(value, str)
            elif kind is dict:
                ok = isinstance(value, dict)
            if not ok:
                raise AccelsimError(f"model config {where}: key '{key}' must be {kind.__name__}, got {_short(value)}")
            if kind in (int, float) and not value > 0:
                raise AccelsimError(f"model config {where}: key '{key}' must be positive, got {_short(value)}")
            if kind is float and not math.isfinite(value):
                raise AccelsimError(f"model config {where}: key '{key}' must be a finite number, got {value!r}")
            return kind(value) if kind in (int, float) else value

        model_type = get("model_type", str)
        if model_type not in MODEL_TYPES:
            raise AccelsimError(f"model config {where}: key 'model_type' is '{model_type}'; "
                                f"supported: {', '.join(MODEL_TYPES)}")
        hidden = get("hidden_size", int)
        heads = get("num_attention_heads", int)
        head_dim = get("head_dim", int, 0)
        if not head_dim:
            if hidden % heads:
                raise AccelsimError(f"model config {where}: key 'hidden_size' ({_short(hidden)}) is not a multiple of "
                                    f"'num_attention_heads' ({heads}) and there is no 'head_dim'")
            head_dim = hidden // heads

        # transformers 5 may write rope_theta/rope_scaling inside one "rope_parameters" dict.
        rope = get("rope_parameters", dict, {})
        theta = rope.get("rope_theta", _HF_DEFAULT_ROPE_THETA)
        if not isinstance(theta, (int, float)) or isinstance(theta, bool):
            raise AccelsimError(f"model config {where}: key 'rope_parameters.rope_theta' must be float, got {_short(theta)}")
        rope_theta = get("rope_theta", float, 0.0) or float(theta)
        scaling = get("rope_scaling", dict, None)
        if scaling is None and rope.get("rope_type", "default") != "default":
            scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
        if scaling is not None and scaling.get("rope_type", scaling.get("type")) == "default":
            scaling = None

        experts = per_token = 0
        if model_type == "mixtral":
            experts = get("num_local_experts", int)
            per_token = get("num_experts_per_tok", int)
        try:
            return cls(
                vocab_size=get("vocab_size", int),
                hidden_size=hidden,
                intermediate_size=get("intermediate_size", int),
                num_layers=get("num_hidden_layers", int),
                num_heads=heads,
                num_kv_heads=get("num_key_value_heads", int, heads),
                head_dim=head_dim,
                rope_theta=rope_theta,
                rms_norm_eps=get("rms_norm_eps", float),
                max_position_embeddings=get("max_position_embeddings", int),
                tie_embeddings=get("tie_word_embeddings", bool, False),
                num_experts=experts,
                experts_per_token=per_token,
                rope_scaling=_freeze(scaling),
                name=name or str(data.get("_name_or_path", "")),
            )
        except AccelsimError as exc:
            raise AccelsimError(f"model config {where}: {str(exc).split(': ', 1)[-1]}") from None

    @classmethod
    def from_gguf_metadata(cls, reader: Any, name: str = "") -> LlamaConfig:
        """Read the architecture keys of a ``gguf.GGUFReader`` (llama.cpp's ``{arch}.*`` names).

        The vocabulary size falls back to the length of ``tokenizer.ggml.tokens``; embeddings are
        tied when the file has no ``output.weight`` tensor. Float32 header values are rounded to the
        shortest decimal that round-trips (1e-05, not 9.9999997e-06).
        """
        fields = reader.fields
        where = f"GGUF {getattr(getattr(reader, 'data', None), 'filename', None) or name or '<reader>'}"

        def value(key: str, default: Any = ...) -> Any:
            if key not in fields:
                if default is ...:
                    raise AccelsimError(f"{where}: missing metadata key '{key}'")
                return default
            entry = fields[key]
            out = entry.contents()
            if isinstance(out, float) and entry.types and entry.types[-1].name == "FLOAT32":
                out = float(str(np.float32(out)))
            return out

        arch = value("general.architecture")
        if arch != "llama":
            raise AccelsimError(f"{where}: general.architecture is '{arch}'; only llama-family files are supported")
        hidden = int(value(f"{arch}.embedding_length"))
        heads = int(value(f"{arch}.attention.head_count"))
        vocab = value(f"{arch}.vocab_size", None)
        if vocab is None:
            vocab = len(fields["tokenizer.ggml.tokens"].data) if "tokenizer.ggml.tokens" in fields else None
        if vocab is None:
            raise AccelsimError(f"{where}: missing metadata key '{arch}.vocab_size'")
        tensor_names = {t.name for t in getattr(reader, "tensors", [])}
        experts = int(value(f"{arch}.expert_count", 0))
        return cls(
            vocab_size=int(vocab),
            hidden_size=hidden,
            intermediate_size=int(value(f"{arch}.feed_forward_length")),
            num_layers=int(value(f"{arch}.block_count")),
            num_heads=heads,
            num_kv_heads=int(value(f"{arch}.attention.head_count_kv", heads)),
            head_dim=int(value(f"{arch}.attention.key_length", hidden // heads)),
            rope_theta=float(value(f"{arch}.rope.freq_base", _HF_DEFAULT_ROPE_THETA)),
            rms_norm_eps=float(value(f"{arch}.attention.layer_norm_rms_epsilon")),
            max_position_embeddings=int(value(f"{arch}.context_length")),
            tie_embeddings="output.weight" not in tensor_names,
            num_experts=experts,
            experts_per_token=int(value(f"{arch}.expert_used_count", 0)) if experts else 0,
            name=name or str(value("general.name", "")),
        )


def _short(value: Any) -> str:
    """``repr`` cut to 60 characters, so a 400-digit number or a long string stays a one-line message."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 60 else text[:57] + "..."


def _freeze(scaling: dict | None) -> tuple[tuple[str, Any], ...] | None:
    if scaling is None:
        return None
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in scaling.items()))


def model_names() -> list[str]:
    """Names of the shipped model configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str | os.PathLike) -> LlamaConfig:
    """A shipped config by name (``llama-3-8b``), or any Hugging Face ``config.json`` by path."""
    text = str(name_or_path)
    if text.endswith(".json") or os.sep in text:
        return LlamaConfig.from_hf_json(Path(text))
    path = CONFIG_DIR / f"{text}.json"
    if not path.is_file():
        near = difflib.get_close_matches(text, model_names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise AccelsimError(f"unknown model '{text}'; known: {', '.join(model_names())}{hint}")
    return LlamaConfig.from_hf_json(path)
