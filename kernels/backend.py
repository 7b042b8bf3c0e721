"""Which Pallas mode a kernel runs in on the current JAX backend."""

from __future__ import annotations

import jax


def default_interpret() -> bool:
    """Interpret on CPU; compile where Pallas has a real lowering (TPU Mosaic, GPU Triton)."""
    return jax.default_backend() not in ("tpu", "gpu")


def on_gpu() -> bool:
    return jax.default_backend() == "gpu"
