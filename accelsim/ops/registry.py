"""The op registry: each kernel op declared once, found by name or by the kernels it executes.

An ``Op`` ties together what the rest of accelsim needs of one operation: its tiler (``plan``: the
fastest legal blocks on a chip and their closed-form counts), its executable kernel call and XLA's own
op on the same inputs (``build``, ``build_xla``: validation and benchmarks), the Pallas kernels it
runs (``kernel_names``: the tracer's records map back to it) and the shapes the validation suite and
roofline plots use. Ops register the way primitives get rules in ``jax.experimental.roofline``: one
module per op, one ``register`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from accelsim.errors import AccelsimError
from accelsim.shapes import Dims
from accelsim.tiling.plan import ChipMemo


@dataclass(frozen=True)
class Op:
    """One kernel op over a frozen shape value (``accelsim.shapes``). ``plan(shape, chip, dtype, blocks=None) -> Plan``; ``build(shape, dtype, blocks, seed)
    -> (fn, args)`` runs our kernel; ``build_xla(shape, dtype, seed) -> (fn, args)`` runs XLA's own op."""

    name: str
    kernel_names: tuple[str, ...]
    plan: Callable[..., Any]
    build: Callable[..., tuple[Callable, tuple]]
    build_xla: Callable[..., tuple[Callable, tuple]] | None
    label: Callable[[Dims], str]
    suite_shapes: tuple[Dims, ...]


_OPS: dict[str, Op] = {}


def memoised(plan: Callable[..., Any]) -> Callable[..., Any]:
    """``plan`` remembered by (shape, chip, dtype, blocks, options): a model prices the same projection
    shapes on the same chip at every batch and phase, and a plan is a frozen value."""
    memo = ChipMemo()

    def remembered(shape: Dims, chip, dtype: str, blocks: dict | None = None, **options):
        given = None if blocks is None else tuple(sorted(blocks.items()))
        key = (shape, dtype, given, tuple(sorted(options.items())))
        return memo.get(chip, key, lambda: plan(shape, chip, dtype, blocks=blocks, **options))

    remembered.__doc__ = plan.__doc__
    return remembered


def register(op: Op) -> Op:
    """Add ``op`` to the registry; a second op of the same name is a programming error."""
    if op.name in _OPS:
        raise ValueError(f"op '{op.name}' is registered twice")
    _OPS[op.name] = op
    return op


def get_op(name: str) -> Op:
    """The registered op called ``name``; a one-line error listing the known ones."""
    _load_builtin_ops()
    if name not in _OPS:
        raise AccelsimError(f"unknown op '{name}': registered are {', '.join(sorted(_OPS))}")
    return _OPS[name]


def all_ops() -> tuple[Op, ...]:
    _load_builtin_ops()
    return tuple(_OPS.values())


def op_of_kernel(kernel_name: str) -> Op | None:
    """The op whose kernels include ``kernel_name`` (a traced pallas_call's name), if any."""
    return next((op for op in all_ops() if kernel_name in op.kernel_names), None)


def _load_builtin_ops() -> None:
    from accelsim.ops import attention, decode, matmul  # noqa: F401  (each module registers its op)


def normal_array(seed: int, shape: tuple[int, ...], dtype: str):
    """A standard-normal array drawn in f32 and cast to ``dtype`` ('f32' or 'bf16'): inputs for timing."""
    import jax
    import jax.numpy as jnp

    jax_dtype = jnp.float32 if dtype == "f32" else jnp.bfloat16
    return jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32).astype(jax_dtype)
