"""SmolLM2's byte-level BPE tokenizer, rebuilt from the GGUF metadata with the ``tokenizers`` library.

The GGUF carries the vocabulary (already spelled in GPT-2's byte alphabet, ``Ġ`` for a space),
the merges, the token types (3 = control: ``<|endoftext|>``, ``<|im_start|>``, ...), BOS/EOS ids
and a ChatML chat template. Pre-tokenisation follows SmolLM2's own ``tokenizer.json`` and
llama.cpp's ``smollm`` pre-tokenizer: split every digit on its own, then GPT-2's byte-level regex.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from accelsim.errors import AccelsimError

_CONTROL = 3  # llama.cpp token type: control (special) token
_USER_DEFINED = 4


class GGUFTokenizer:
    """``encode`` / ``decode`` / ``apply_chat_template`` for a GGUF whose ``tokenizer.ggml.model`` is ``gpt2``."""

    def __init__(self, reader: Any) -> None:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        fields = reader.fields

        def meta(key: str, default: Any = ...) -> Any:
            if key not in fields:
                if default is ...:
                    raise AccelsimError(f"GGUF {reader.data.filename}: missing metadata key '{key}'")
                return default
            return fields[key].contents()

        kind = meta("tokenizer.ggml.model")
        if kind != "gpt2":
            raise AccelsimError(f"GGUF {reader.data.filename}: tokenizer '{kind}' is not supported (only gpt2 BPE)")
        tokens: list[str] = meta("tokenizer.ggml.tokens")
        merges = [tuple(m.split(" ", 1)) for m in meta("tokenizer.ggml.merges")]
        types = meta("tokenizer.ggml.token_type", [1] * len(tokens))
        if len(types) != len(tokens):
            raise AccelsimError(f"GGUF {reader.data.filename}: {len(types)} token types for {len(tokens)} tokens")

        vocab = {tok: i for i, tok in enumerate(tokens)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=bool(meta("tokenizer.ggml.add_space_prefix", False)),
                                     use_regex=True),
        ])
        tok.decoder = decoders.ByteLevel()
        # Control tokens stay whole wherever they appear in the text (as llama.cpp and transformers do).
        kinds = list(zip(tokens, types, strict=True))
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in kinds if k == _CONTROL])
        user = [AddedToken(t, special=False, normalized=False) for t, k in kinds if k == _USER_DEFINED]
        if user:
            tok.add_tokens(user)
        self._tok = tok
        self.tokens = tokens
        self.vocab_size = len(tokens)
        self.bos_id: int = int(meta("tokenizer.ggml.bos_token_id"))
        self.eos_id: int = int(meta("tokenizer.ggml.eos_token_id"))
        self.add_bos: bool = bool(meta("tokenizer.ggml.add_bos_token", False))
        self.chat_template: str | None = meta("tokenizer.chat_template", None)

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of ``text``; BOS is prepended only if the file asks for it (SmolLM2's does not)."""
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if self.add_bos if add_bos is None else add_bos:
            ids = [self.bos_id] + ids
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """The text of ``ids`` (control tokens such as ``<|im_end|>`` kept unless ``skip_special``)."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def apply_chat_template(self, user_text: str, system: str | None = None) -> str:
        """The prompt for one user turn, ending where the assistant starts answering.

        SmolLM2's template is ChatML; when the conversation has no system turn it inserts its own
        default system message, which we read out of the template rather than hard-code.
        """
        template = self.chat_template
        if not template or "<|im_start|>" not in template:
            raise AccelsimError("this GGUF carries no ChatML chat template")
        if system is None:
            found = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", template, re.S)
            system = found.group(1) if found else None
        turns = [("system", system)] if system is not None else []
        turns.append(("user", user_text))
        return "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns) + "<|im_start|>assistant\n"


def load_smollm2_tokenizer(path: str | Path | None = None) -> GGUFTokenizer:
    """The tokenizer of the SmolLM2 GGUF (shares the parsed file with ``load_smollm2``)."""
    from accelsim.models.weights import open_gguf

    return GGUFTokenizer(open_gguf(path))
