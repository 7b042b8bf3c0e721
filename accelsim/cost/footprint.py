"""On-chip bytes a kernel needs, derived from its own BlockSpecs and scratch shapes (``kernels.specs.KernelSpecs``).

Every pipelined input and output block is double-buffered (the copy of the next block overlaps the
work on this one); scratch buffers are held once. On chips whose accumulators live in registers
(GPUs: the chip file's register budget), the largest scratch buffer, the accumulator, is held there
instead, and a block choice whose accumulator exceeds that budget cannot run.
"""

from __future__ import annotations

import math

from accelsim.dtypes import array_itemsize, dtype_bytes

PIPELINE_BUFFERS = 2


def _itemsize(dtype) -> float:
    return dtype_bytes(dtype) if isinstance(dtype, str) else array_itemsize(dtype)


def _block_elements(spec) -> int | None:
    """Elements of one block (squeezed dims count 1), or None for an operand left in main memory."""
    shape = getattr(spec, "block_shape", None)
    if shape is None:
        return None
    return math.prod(1 if d is None else int(getattr(d, "block_size", d)) for d in shape)


def footprint(specs, register_bytes: float = 0.0, intermediate_bytes: float = 0.0) -> float:
    """Bytes of staging memory the kernel holds: buffered blocks, scratch and body intermediates
    (``intermediate_bytes``, e.g. an attention score tile); ``inf`` if the accumulator does not fit the
    ``register_bytes`` a register-accumulating chip offers."""
    buffers = 0.0
    for spec, (_, dtype) in zip(list(specs.in_specs) + list(specs.out_specs),
                                list(specs.in_arrays) + list(specs.out_arrays)):
        elements = _block_elements(spec)
        if elements is not None:
            buffers += PIPELINE_BUFFERS * elements * _itemsize(dtype)
    scratch = [math.prod(s.shape) * _itemsize(s.dtype) for s in specs.scratch_shapes]
    held = sum(scratch)
    if register_bytes and scratch:
        if max(scratch) > register_bytes:
            return math.inf
        held -= max(scratch)
    return buffers + held + intermediate_bytes
