"""XLA's elementwise fusion in the traced byte counts: intermediates read only by fused ops never reach memory."""

import jax
import jax.numpy as jnp

from accelsim.trace.workload import trace_workload


def _op_bytes(fn, *args) -> float:
    return sum(op.bytes * op.weight for op in trace_workload(fn, *args).ops)


def test_an_elementwise_chain_reads_its_input_and_writes_its_result_once():
    x = jnp.ones((1000,), jnp.float32)  # 4,000 bytes
    # mul, exp, add unfused would move 3 x (4,000 in + 4,000 out) = 24,000 bytes; fused: x in, result out
    assert _op_bytes(lambda v: jnp.exp(v * 2.0) + 1.0, x) == 8000


def test_a_value_a_matmul_reads_stays_in_memory():
    x = jnp.ones((64, 64), jnp.float32)  # 16,384 bytes
    # the scaled x is written (16,384) for the dot to read; the scaling reads x (16,384); the dot is not an op here
    assert _op_bytes(lambda v: (v * 2.0) @ v, x) == 2 * 16384


def test_a_reduction_fuses_its_elementwise_producer_and_a_broadcast_is_read_small():
    x = jnp.ones((256, 128), jnp.float32)  # 131,072 bytes
    scale = jnp.ones((128,), jnp.float32)  # 512 bytes, broadcast to (256, 128)
    # x * scale feeds only the sum: the product is never written; the sum reads x and scale once and writes 1 KB
    got = _op_bytes(lambda v, s: jnp.sum(v * s, axis=1), x, scale)
    assert got == 131072 + 512 + 256 * 4


def test_a_returned_intermediate_is_written():
    x = jnp.ones((1000,), jnp.float32)
    # y = 2x is returned as well as read by exp: mul reads x, writes y (8,000); exp reads y, writes its result
    assert _op_bytes(lambda v: (lambda y: (y, jnp.exp(y)))(v * 2.0), x) == 4 * 4000
