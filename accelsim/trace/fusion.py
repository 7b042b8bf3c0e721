"""XLA's fusion of elementwise ops, applied to the byte counts of the ops a traced jaxpr leaves to XLA.

Each op left to XLA is first counted unfused (it reads every operand and writes every result once).
XLA:GPU and XLA:TPU then fuse chains of elementwise ops, and elementwise producers into the reductions
that consume them (loop and input fusion), so an intermediate every one of whose readers is fused with
it never reaches memory: its producer does not write it and its readers do not read it. A broadcast is
fused into its readers the same way: they read the broadcast's (small) operand, not its result.
Results a jaxpr returns, and values read by a kernel, a matmul or a collective, stay in memory.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

from jax.extend import core

ELEMENTWISE = frozenset({
    "add", "sub", "mul", "div", "neg", "max", "min", "abs", "sign", "exp", "exp2", "log", "log1p", "expm1",
    "logistic", "tanh", "rsqrt", "sqrt", "cbrt", "integer_pow", "pow", "square", "erf", "erf_inv", "sin", "cos",
    "convert_element_type", "select_n", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "xor",
    "clamp", "floor", "ceil", "round", "is_finite", "nextafter", "rem", "atan2", "reduce_precision",
})
REDUCTIONS = frozenset({"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin"})
TRANSPARENT = frozenset({"broadcast_in_dim", "reshape", "squeeze", "expand_dims"})  # views XLA fuses away


def fuse_elementwise(jaxpr, made: dict[int, object], nbytes: Callable) -> None:
    """Lower the ``bytes`` of the ``XlaOp`` records in ``made`` (eqn id -> record, this jaxpr's eqns only)
    by what fusion keeps out of memory; ``nbytes(aval)`` is an array's size."""
    readers: dict[object, list] = defaultdict(list)
    producer: dict[object, object] = {}
    for eqn in jaxpr.eqns:
        for var in eqn.invars:
            if isinstance(var, core.Var):
                readers[var].append(eqn)
        for var in eqn.outvars:
            producer[var] = eqn
    returned = {v for v in jaxpr.outvars if isinstance(v, core.Var)}
    fusible = lambda eqn: id(eqn) in made and eqn.primitive.name in ELEMENTWISE | REDUCTIONS  # noqa: E731
    for eqn in jaxpr.eqns:
        if id(eqn) not in made or eqn.primitive.name not in ELEMENTWISE:
            continue
        for var in eqn.outvars:
            users = readers.get(var, [])
            if var in returned or not users or not all(fusible(u) for u in users):
                continue
            size = nbytes(var.aval)
            _lower(made[id(eqn)], size)
            for user in users:
                _lower(made[id(user)], size * sum(v is var for v in user.invars))
    for eqn in jaxpr.eqns:
        if id(eqn) not in made or eqn.primitive.name not in ELEMENTWISE | REDUCTIONS:
            continue
        for var in {v for v in eqn.invars if isinstance(v, core.Var)}:
            source = producer.get(var)
            if source is not None and source.primitive.name in TRANSPARENT and isinstance(source.invars[0], core.Var):
                reads = sum(v is var for v in eqn.invars)
                _lower(made[id(eqn)], reads * (nbytes(var.aval) - nbytes(source.invars[0].aval)))


def _lower(record, by: float) -> None:
    record.bytes = max(0.0, record.bytes - by)
