"""Property-testing kernels: hypothesis strategies for shapes, dtypes and arrays, and the two checks every
kernel should pass (rungs 1 and 2 of the validation ladder).

- ``assert_close_to_float64(kernel, reference, *args, reduction=K)``: the kernel's output against the
  reference run in float64 on the same, already rounded inputs, within a bound scaled by the reduction
  length and the output dtype.
- ``assert_counts_match(kernel_call, *args, closed_form={...})``: the copies and FLOPs traced from the
  kernel's BlockSpecs and grid equal your closed form exactly.

Strategies: ``shapes(blocks=(8, 128), max_side=...)`` (sides that divide the blocks and ragged ones),
``dtypes()`` ('f32', 'bf16') and ``arrays(shape, dtype)``; hypothesis cannot draw bfloat16, so every array
is drawn in float32 and cast. Needs ``hypothesis`` (``pip install -e ".[test]"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
try:
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
except ImportError as exc:  # pragma: no cover - the test extra is missing
    raise ImportError("accelsim.testing needs hypothesis: pip install -e \".[test]\"") from exc

from accelsim.api import trace_function
from accelsim.dtypes import dtype_name

DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16}
# Unit roundoff (half an ulp at 1.0) of each dtype a kernel may write; products accumulate in f32.
UNIT_ROUNDOFF = {"f32": 2.0 ** -24, "bf16": 2.0 ** -8, "fp16": 2.0 ** -11}
ACCUMULATOR = "f32"


# ---- arrays and tolerances ------------------------------------------------------------------------------

def random_array(seed: int, shape: tuple[int, ...], dtype: str) -> jax.Array:
    """Standard normals drawn in float32 from ``seed`` and cast to ``dtype`` ('f32' or 'bf16')."""
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return jnp.asarray(values).astype(DTYPES[dtype])


def as_f64(x: Any) -> np.ndarray:
    """An array's values, exactly, as a numpy float64 array (bf16 and f32 widen without rounding)."""
    return np.asarray(jnp.asarray(x).astype(jnp.float32), dtype=np.float64)


def reduction_tolerance(magnitude: np.ndarray, reduction: int, out_dtype: str) -> np.ndarray:
    """Elementwise error bound of a sum of ``reduction`` terms accumulated in f32 and written in ``out_dtype``:
    twice (K·u_f32 + u_out)·magnitude, where ``magnitude`` is the sum of the terms' absolute values."""
    unit = reduction * UNIT_ROUNDOFF[ACCUMULATOR] + UNIT_ROUNDOFF[out_dtype]
    return 2.0 * unit * np.asarray(magnitude, np.float64) + 1e-30


def matmul_tolerance(a64: np.ndarray, b64: np.ndarray, k: int, out_dtype: str) -> np.ndarray:
    """Elementwise error bound for an f32-accumulated product: K*u*(|A||B|) plus one output rounding."""
    return reduction_tolerance(np.abs(a64) @ np.abs(b64), k, out_dtype)


# ---- hypothesis strategies ------------------------------------------------------------------------------

def dtypes() -> SearchStrategy[str]:
    """'f32' or 'bf16' (names ``random_array`` and ``arrays`` take)."""
    return st.sampled_from(sorted(DTYPES))


def shapes(blocks: Sequence[int] = (8, 128), max_side: int = 256,
           divisible: bool | None = None) -> SearchStrategy[tuple[int, ...]]:
    """Shapes with one side per block, each side in 1..``max_side``.

    ``divisible=True``: every side a multiple of its block; ``False``: at least one side is not (a ragged
    edge block); ``None``: both kinds, about equally often."""
    blocks = tuple(int(b) for b in blocks)
    if divisible is None:
        return st.one_of(shapes(blocks, max_side, True), shapes(blocks, max_side, False))
    if divisible:
        if max(blocks) > max_side:
            raise ValueError(f"max_side {max_side} is smaller than a block of {blocks}: no side can divide it")
        return st.tuples(*[st.integers(1, max_side // b).map(lambda q, b=b: q * b) for b in blocks])
    ragged_axes = [a for a, b in enumerate(blocks) if b > 1 and max_side > 1]
    if not ragged_axes:
        raise ValueError(f"blocks {blocks} with max_side {max_side}: every side divides its block")
    return _ragged_shapes(blocks, max_side, ragged_axes)


@st.composite
def _ragged_shapes(draw, blocks: tuple[int, ...], max_side: int, ragged_axes: list[int]) -> tuple[int, ...]:
    sides = [draw(st.integers(1, max_side)) for _ in blocks]
    if all(s % b == 0 for s, b in zip(sides, blocks)):
        axis = draw(st.sampled_from(ragged_axes))
        sides[axis] -= draw(st.integers(1, min(blocks[axis], sides[axis]) - 1))
    return tuple(sides)


def arrays(shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]],
           dtype: str | SearchStrategy[str] = "f32") -> SearchStrategy[jax.Array]:
    """Arrays of ``shape`` and ``dtype`` (values or strategies): standard normals from a drawn seed, in f32, cast."""
    shape_st = shape if isinstance(shape, SearchStrategy) else st.just(tuple(shape))
    dtype_st = dtype if isinstance(dtype, SearchStrategy) else st.just(dtype)
    return st.builds(random_array, st.integers(0, 2 ** 32 - 1), shape_st, dtype_st)


# ---- rung 1: outputs against float64 --------------------------------------------------------------------

def assert_close_to_float64(kernel: Callable[..., Any], reference: Callable[..., Any], *args: Any, reduction: int,
                            magnitude: np.ndarray | None = None) -> None:
    """Assert ``kernel(*args)`` is within rounding of ``reference`` run in float64 on the same inputs.

    Array arguments are widened exactly to float64 (so bf16 inputs are the already-rounded values the
    kernel saw); ``reference`` gets them as numpy arrays under ``jax.enable_x64``, so plain ``jnp`` code
    computes in float64. The bound is ``reduction_tolerance(magnitude, reduction, output dtype)``, where
    ``magnitude`` defaults to the reference applied to the inputs' absolute values: the exact sum of
    |terms| for sums of products (matmul, convolution, elementwise add). Pass ``magnitude`` for others.
    """
    out = kernel(*args)
    wide = [as_f64(a) if hasattr(a, "dtype") else a for a in args]
    with jax.enable_x64(True):
        expected = np.asarray(reference(*wide), np.float64)
        if magnitude is None:
            magnitude = np.abs(np.asarray(reference(*[np.abs(a) if isinstance(a, np.ndarray) else a for a in wide])))
    got = as_f64(out)
    dtype = dtype_name(out.dtype)
    if got.shape != expected.shape:
        raise AssertionError(f"kernel output shape {got.shape} != reference shape {expected.shape}")
    if not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))
        raise AssertionError(f"kernel output has {len(bad)} non-finite elements of {got.size} "
                             f"(first at index {tuple(int(i) for i in bad[0])}: {got[tuple(bad[0])]})")
    tolerance = np.broadcast_to(reduction_tolerance(magnitude, reduction, dtype), got.shape)
    error = np.abs(got - expected)
    over = error > tolerance
    if over.any():
        worst = np.unravel_index(np.argmax(np.where(over, error / tolerance, 0.0)), got.shape)
        where = tuple(int(i) for i in worst)
        raise AssertionError(
            f"kernel differs from its float64 reference at {int(over.sum())} of {got.size} elements "
            f"({dtype} output, reduction {reduction}); worst at index {where}: got {got[worst]:.9g}, expected "
            f"{expected[worst]:.9g}, error {error[worst]:.3g} > tolerance {tolerance[worst]:.3g} "
            f"({error[worst] / tolerance[worst]:.3g}x)")


# ---- rung 2: traced counts against a closed form --------------------------------------------------------

@dataclass(frozen=True)
class KernelCounts:
    """What a call's ``pallas_call``s execute, times their loop trips: main-memory bytes copied per pipelined
    operand (inputs, then outputs, kernel after kernel), their total, and the FLOPs of their block products."""

    operand_bytes: tuple[float, ...]
    bytes: float
    flops: float


def traced_counts(kernel_call: Callable[..., Any], *args: Any) -> KernelCounts:
    """The executed copies and FLOPs of every ``pallas_call`` in ``kernel_call(*args)``, read from its jaxpr."""
    kernels = trace_function(kernel_call, *args).kernels
    if not kernels:
        raise AssertionError("no pallas_call was traced: counts come from a kernel's BlockSpecs and grid")
    operands = tuple(k.weight * c.bytes for k in kernels for c in k.counts)
    return KernelCounts(operands, sum(operands), sum(k.weight * k.flops for k in kernels))


def assert_counts_match(kernel_call: Callable[..., Any], *args: Any,
                        closed_form: Mapping[str, float | Sequence[float]]) -> None:
    """Assert the traced counts of ``kernel_call(*args)`` equal ``closed_form`` exactly.

    ``closed_form`` gives any of ``bytes`` (all copies), ``operand_bytes`` (one figure per pipelined
    operand, inputs then outputs) and ``flops`` (2·m·n·k per block product, padded blocks included)."""
    unknown = set(closed_form) - {"bytes", "operand_bytes", "flops"}
    if unknown:
        raise TypeError(f"closed_form keys {sorted(unknown)}: expected bytes, operand_bytes or flops")
    counts = traced_counts(kernel_call, *args)
    wrong = []
    for key, expected in closed_form.items():
        traced = getattr(counts, key)
        same = tuple(traced) == tuple(expected) if key == "operand_bytes" else traced == expected
        if not same:
            wrong.append(f"{key}: traced {traced}, closed form {expected}")
    if wrong:
        raise AssertionError("traced counts differ from the closed form: " + "; ".join(wrong))
