"""Shared test helpers: float64 references on already-rounded inputs, and tolerances scaled by reduction length."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16}
UNIT_ROUNDOFF = {"f32": 2.0 ** -24, "bf16": 2.0 ** -8}


def random_array(seed: int, shape: tuple[int, ...], dtype: str) -> jax.Array:
    """Draw float32 normals and cast (hypothesis can't draw bf16)."""
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return jnp.asarray(values).astype(DTYPES[dtype])


def as_f64(x: jax.Array) -> np.ndarray:
    return np.asarray(x.astype(jnp.float32), dtype=np.float64)


def matmul_tolerance(a64: np.ndarray, b64: np.ndarray, k: int, out_dtype: str) -> np.ndarray:
    """Elementwise error bound for an f32-accumulated product: K*u*(|A||B|) plus one output rounding."""
    magnitude = np.abs(a64) @ np.abs(b64)
    return 2.0 * (k * UNIT_ROUNDOFF["f32"] * magnitude + UNIT_ROUNDOFF[out_dtype] * magnitude) + 1e-30
