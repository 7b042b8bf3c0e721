"""Dtype names accepted on the command line and in chip files, with their byte widths."""

from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError

BYTES_PER_ELEMENT: dict[str, float] = {
    "f64": 8, "f32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp4": 0.5,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "int4": 0.5, "bool": 1,
}
_ALIASES = {"float64": "f64", "fp64": "f64", "float32": "f32", "bfloat16": "bf16", "float16": "fp16", "f16": "fp16",
            "fp32": "f32", "int": "int32"}
# numpy / ml_dtypes names of arrays -> our names (every fp8 and fp4 format prices at the chip's fp8 / fp4 rate)
_ARRAY_DTYPES = {"float64": "f64", "float32": "f32", "bfloat16": "bf16", "float16": "fp16",
                 "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "float8_e4m3fnuz": "fp8", "float8_e5m2fnuz": "fp8",
                 "float8_e4m3b11fnuz": "fp8", "float8_e4m3": "fp8", "float8_e3m4": "fp8", "float8_e8m0fnu": "fp8",
                 "float4_e2m1fn": "fp4", "int64": "int64", "int32": "int32", "int16": "int16", "int8": "int8",
                 "uint8": "int8", "int4": "int4", "uint4": "int4", "bool": "bool"}


def canonical_dtype(name: str) -> str:
    """Return the canonical short name of a dtype, or raise a one-line error listing the known ones."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in BYTES_PER_ELEMENT:
        raise AccelsimError(f"unknown dtype '{name}': expected one of {', '.join(BYTES_PER_ELEMENT)}")
    return key


def dtype_bytes(name: str) -> float:
    """Bytes per element of a dtype name (int4 is half a byte)."""
    return BYTES_PER_ELEMENT[canonical_dtype(name)]




def dtype_name(dtype) -> str:
    """Our name of an array dtype (``jnp.bfloat16`` -> 'bf16'); a one-line error for one we cannot price."""
    name = np.dtype(dtype).name
    if name not in _ARRAY_DTYPES:
        raise AccelsimError(f"array dtype {name} has no accelsim name: known are {', '.join(sorted(_ARRAY_DTYPES))}")
    return _ARRAY_DTYPES[name]


def array_itemsize(dtype) -> float:
    """Bytes per element of an array dtype as stored packed: 0.5 for int4 and fp4 (numpy holds them in a byte)."""
    if np.dtype(dtype).name in _ARRAY_DTYPES:
        return BYTES_PER_ELEMENT[dtype_name(dtype)]
    return float(np.dtype(dtype).itemsize)
