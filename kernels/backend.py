"""Which form of a kernel runs: the Triton form (GPU), the compiled CPU executor, or the grid-form ``pallas_call``.

The choice follows the JAX backend, unless ``lowering_for`` names a target: inside
``with lowering_for("gpu")`` every kernel builds its Triton form with ``interpret=False`` even on a
CPU-only host, so ``jax.export.export(..., platforms=["cuda"])`` lowers what a GPU would run; inside
``lowering_for("cpu")`` the grid form runs through ``kernels.grid_exec`` (XLA:CPU compiles it), and
inside ``lowering_for("interpret")`` it is the ``pallas_call`` in interpret mode.

Why Triton on GPU, not Mosaic GPU (Pallas's default GPU lowering): our kernels walk their reduction
axis (matmul k, attention kv) inside each program over the same block slices; Triton streams
those slices through registers and its own pipelined shared-memory buffers, while Mosaic GPU
stages each whole BlockSpec block in shared memory (a whole-K matmul block of 128x576 bf16 plus
576x256 already exceeds an H100's 227 KiB). Triton's rule, power-of-two block dims of at least 16
for ``dot``, is the GPU chips' ``[block_rule]``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import jax

_TARGETS = ("cpu", "interpret", "gpu", "tpu")
# A jit-cache-sensitive context, not a plain contextvar: a jitted workload first run compiled and then
# traced under ``lowering_for("interpret")`` must be traced again, not served the compiled form's jaxpr.
_FORCED = jax.make_user_context(None)

# What a CPU host runs by default: the compiled executor. The tracer reads its counts from the Pallas form
# under ``lowering_for("interpret")`` (accelsim/trace/workload.py), so counts do not depend on this.
CPU_DEFAULT = "cpu"


def kernel_target() -> str:
    """'gpu', 'tpu', 'cpu' or 'interpret': the target named by ``lowering_for``, else the JAX default
    backend (``CPU_DEFAULT`` on a CPU host)."""
    forced = _FORCED.value
    if forced is not None:
        return forced
    backend = jax.default_backend()
    return backend if backend in ("gpu", "tpu") else CPU_DEFAULT


@contextlib.contextmanager
def lowering_for(target: str) -> Iterator[None]:
    """Build every kernel for ``target`` inside the block, whatever the host: 'gpu' (Triton forms),
    'tpu' (Mosaic), 'cpu' (the compiled CPU executor, ``kernels.grid_exec``) or 'interpret' (the
    ``pallas_call`` grid form in interpret mode: what the tracer reads its counts from).

    The target is part of every ``jax.jit`` cache key, so one jitted function traced under two targets
    is traced twice, once per form."""
    if target not in _TARGETS:
        raise ValueError(f"lowering_for: target must be one of {', '.join(_TARGETS)}, got {target!r}")
    with _FORCED(target):
        yield


def default_interpret() -> bool:
    """Interpret on CPU; compile where Pallas has a real lowering (TPU Mosaic, GPU Triton)."""
    return kernel_target() in ("cpu", "interpret")


def on_gpu() -> bool:
    """Whether kernels build their GPU (Triton) form."""
    return kernel_target() == "gpu"


def kernel_form(interpret: bool | None) -> str:
    """Which form a kernel call builds: 'gpu' (Triton form, on a GPU target unless interpret mode is asked
    for), 'compiled' (the CPU executor, on a CPU target unless ``interpret=True``) or 'pallas' (the grid
    form's ``pallas_call``: Mosaic on TPU, interpret mode elsewhere)."""
    target = kernel_target()
    if target == "gpu" and not interpret:
        return "gpu"
    if target == "cpu" and not interpret:
        return "compiled"
    return "pallas"


TRITON_STAGES = 2  # pipelined shared-memory buffers per streamed slice: the double buffering the cost model assumes
_ACC_PER_THREAD = 128  # f32 accumulator elements a thread holds in registers before Triton would spill


def triton_params(acc_elements: int = 0):
    """Compiler parameters that make Pallas lower a call through Triton (not Mosaic GPU): ``TRITON_STAGES``
    stages, and warps enough (4 to 16) that an ``acc_elements`` f32 accumulator tile fits in registers."""
    from jax.experimental.pallas import triton as pl_triton

    warps = 4
    while warps < 16 and acc_elements > warps * 32 * _ACC_PER_THREAD:
        warps *= 2
    return pl_triton.CompilerParams(num_warps=warps, num_stages=TRITON_STAGES)
