"""accelsim.testing: its strategies draw what they promise; its assertions pass right kernels and fail wrong ones."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.testing import (arrays, as_f64, assert_close_to_float64, assert_counts_match, dtypes, matmul_tolerance,
                              random_array, reduction_tolerance, shapes, traced_counts)
from kernels.matmul import matmul

SETTINGS = settings(derandomize=True, deadline=None, max_examples=30)
BLOCKS = dict(bm=8, bn=8, bk=16)


def blocked_matmul(a, b):
    return matmul(a, b, **BLOCKS)


def reference_matmul(a, b):
    return a @ b


@SETTINGS
@given(blocks=st.lists(st.integers(1, 16), min_size=1, max_size=3), data=st.data())
def test_shapes_divide_or_not_as_asked(blocks, data):
    divisible = data.draw(shapes(blocks, max_side=40, divisible=True))
    assert len(divisible) == len(blocks) and all(1 <= s <= 40 and s % b == 0 for s, b in zip(divisible, blocks))
    if any(b > 1 for b in blocks):
        ragged = data.draw(shapes(blocks, max_side=40, divisible=False))
        assert all(1 <= s <= 40 for s in ragged) and any(s % b for s, b in zip(ragged, blocks))


def test_shapes_draw_both_kinds_by_default():
    kinds = set()

    @settings(derandomize=True, deadline=None, max_examples=40)
    @given(shape=shapes((8, 16), max_side=64))
    def draw(shape):
        kinds.add(shape[0] % 8 == 0 and shape[1] % 16 == 0)

    draw()
    assert kinds == {True, False}


def test_shapes_refuse_impossible_requests():
    with pytest.raises(ValueError, match="max_side"):
        shapes((32,), max_side=16, divisible=True)
    with pytest.raises(ValueError, match="every side divides"):
        shapes((1, 1), max_side=16, divisible=False)


@settings(derandomize=True, deadline=None, max_examples=10)
@given(x=arrays(st.tuples(st.integers(1, 5), st.integers(1, 5)), dtypes()))
def test_arrays_are_drawn_in_f32_and_cast(x):
    assert x.dtype in (jnp.float32, jnp.bfloat16) and x.ndim == 2 and np.all(np.isfinite(as_f64(x)))
    if x.dtype == jnp.bfloat16:  # each value is exactly a bf16: rounding it again changes nothing
        assert np.array_equal(as_f64(x), as_f64(jnp.asarray(as_f64(x), jnp.float32).astype(jnp.bfloat16)))


def test_matmul_tolerance_is_the_reduction_tolerance_of_abs_product():
    a, b = as_f64(random_array(0, (3, 7), "f32")), as_f64(random_array(1, (7, 2), "f32"))
    magnitude = np.abs(a) @ np.abs(b)
    hand = 2.0 * (7 * 2.0 ** -24 + 2.0 ** -8) * magnitude + 1e-30
    np.testing.assert_array_equal(matmul_tolerance(a, b, 7, "bf16"), hand)
    np.testing.assert_array_equal(reduction_tolerance(magnitude, 7, "bf16"), hand)


@settings(derandomize=True, deadline=None, max_examples=6)
@given(shape=shapes((8, 16, 8), max_side=40), dtype=dtypes(), seed=st.integers(0, 2 ** 16))
def test_right_matmul_passes_on_ragged_and_divisible_shapes(shape, dtype, seed):
    m, k, n = shape
    a, b = random_array(seed, (m, k), dtype), random_array(seed + 1, (k, n), dtype)
    assert_close_to_float64(blocked_matmul, reference_matmul, a, b, reduction=k)


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_matmul_that_drops_the_last_k_block_fails(dtype):
    a, b = random_array(0, (16, 40), dtype), random_array(1, (40, 8), dtype)
    kept = 32  # K = 40 runs as k blocks of 16, 16 and a ragged 8: keep all but the last

    def dropped(x, y):
        return blocked_matmul(x[:, :kept], y[:kept])

    with pytest.raises(AssertionError, match=f"differs from its float64 reference .* \\({dtype} output, reduction 40"):
        assert_close_to_float64(dropped, reference_matmul, a, b, reduction=40)


def test_f32_kernel_off_by_1e_2_fails():
    a, b = random_array(2, (8, 32), "f32"), random_array(3, (32, 8), "f32")
    with pytest.raises(AssertionError, match="got .* expected"):
        assert_close_to_float64(lambda x, y: blocked_matmul(x, y) + 1e-2, reference_matmul, a, b, reduction=32)


def test_tolerance_grows_with_the_reduction_length():
    a, b = random_array(4, (8, 64), "f32"), random_array(5, (64, 8), "f32")
    half_bound_at_64 = reduction_tolerance(np.abs(as_f64(a)) @ np.abs(as_f64(b)), 64, "f32") / 2

    def nudged(x, y):
        return jnp.asarray(as_f64(x) @ as_f64(y) + half_bound_at_64, jnp.float32)

    assert_close_to_float64(nudged, reference_matmul, a, b, reduction=64)
    with pytest.raises(AssertionError):
        assert_close_to_float64(nudged, reference_matmul, a, b, reduction=1)


def test_non_finite_output_fails():
    a, b = random_array(6, (8, 8), "f32"), random_array(7, (8, 8), "f32")
    with pytest.raises(AssertionError, match="non-finite"):
        assert_close_to_float64(lambda x, y: (x @ y).at[1, 2].set(jnp.nan), reference_matmul, a, b, reduction=8)


def test_wrong_shape_fails():
    a = random_array(8, (8, 8), "f32")
    with pytest.raises(AssertionError, match="shape"):
        assert_close_to_float64(lambda x: x[:4], lambda x: x, a, reduction=1)


def hand_matmul_counts(m: int, k: int, n: int, itemsize: int) -> dict:
    """Grid (i, j, k) over (M/8, N/8, K/16), k fastest: A's block (i, k) changes every step, so A is copied once
    per j block; B's block (k, j) likewise once per i block; C once. FLOPs are the padded block products."""
    gm, gn, gk = -(-m // 8), -(-n // 8), -(-k // 16)
    a, b, c = m * k * itemsize * gn, k * n * itemsize * gm, m * n * itemsize
    return {"operand_bytes": (a, b, c), "bytes": a + b + c, "flops": gm * gn * gk * 2 * 8 * 8 * 16}


@pytest.mark.parametrize("m,k,n,dtype", [(16, 32, 24, "f32"), (20, 40, 12, "bf16"), (8, 16, 8, "f32")])
def test_counts_match_hand_closed_form(m, k, n, dtype):
    a, b = random_array(0, (m, k), dtype), random_array(1, (k, n), dtype)
    assert_counts_match(blocked_matmul, a, b, closed_form=hand_matmul_counts(m, k, n, 4 if dtype == "f32" else 2))


def test_wrong_closed_forms_fail():
    a, b = random_array(0, (20, 40), "f32"), random_array(1, (40, 12), "f32")
    right = hand_matmul_counts(20, 40, 12, 4)
    compulsory = (20 * 40 + 40 * 12 + 20 * 12) * 4  # each operand once: ignores the re-reads
    for wrong in ({"bytes": compulsory}, {"flops": 2 * 20 * 40 * 12}, {"operand_bytes": right["operand_bytes"][::-1]}):
        with pytest.raises(AssertionError, match="traced counts differ"):
            assert_counts_match(blocked_matmul, a, b, closed_form=wrong)
    with pytest.raises(TypeError, match="closed_form keys"):
        assert_counts_match(blocked_matmul, a, b, closed_form={"byte": 1})


def test_counts_of_a_call_without_kernel_fail():
    a = random_array(0, (8, 8), "f32")
    with pytest.raises(AssertionError, match="no pallas_call"):
        traced_counts(lambda x: x @ x, a)
