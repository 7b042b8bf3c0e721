"""Dtype names accepted on the command line and in chip files, with their byte widths."""

from __future__ import annotations

from accelsim.errors import AccelsimError

BYTES_PER_ELEMENT: dict[str, float] = {
    "f32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5,
}
_ALIASES = {"float32": "f32", "bfloat16": "bf16", "float16": "fp16", "f16": "fp16", "fp32": "f32"}


def canonical_dtype(name: str) -> str:
    """Return the canonical short name of a dtype, or raise a one-line error listing the known ones."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in BYTES_PER_ELEMENT:
        raise AccelsimError(f"unknown dtype '{name}': expected one of {', '.join(BYTES_PER_ELEMENT)}")
    return key


def dtype_bytes(name: str) -> float:
    """Bytes per element of a dtype name (int4 is half a byte)."""
    return BYTES_PER_ELEMENT[canonical_dtype(name)]


