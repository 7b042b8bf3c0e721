"""Walk a whole workload's jaxpr: each pallas_call, each XLA matmul and each other op, with loop trip counts.

``trace_workload(fn, *args)`` traces ``fn`` once with ``jax.make_jaxpr`` and returns chip-independent
records; ``accelsim.cost.workload`` prices them on a chip. Loop bodies count once per iteration
(``scan`` length, ``fori_loop`` bounds), which is what ``jax.experimental.roofline`` and XLA's
``cost_analysis()`` do not do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import jax
import numpy as np

from accelsim.trace.grid_eval import NotStatic
from accelsim.trace.pallas import _CALLS, KernelRecord, _dot_shape, record_pallas_call

# Ops that only relabel data; XLA emits no memory traffic for them.
_FREE = {"reshape", "squeeze", "expand_dims", "broadcast_in_dim", "bitcast_convert_type", "copy_p",
         "iota", "stop_gradient", "pvary", "optimization_barrier", "random_wrap", "random_unwrap",
         "random_seed", "random_bits", "threefry2x32", "sharding_constraint"}


@dataclass
class XlaMatmul:
    """A dot_general left to XLA (outside our kernels): (batch, m, k, n) in ``in_bytes`` per element."""

    scope: str
    batch: int
    m: int
    k: int
    n: int
    in_bytes: int
    out_bytes: int
    weight: float = 1.0


@dataclass
class XlaOp:
    """Any other op left to XLA, counted unfused: it reads its inputs and writes its outputs once."""

    name: str
    scope: str
    bytes: float
    elements: float
    weight: float = 1.0


@dataclass
class WorkloadTrace:
    kernels: list[KernelRecord] = field(default_factory=list)
    matmuls: list[XlaMatmul] = field(default_factory=list)
    ops: list[XlaOp] = field(default_factory=list)


class TracedWorkload:
    """A workload traced once; ``records(*args)`` re-reads it for new scalar-prefetch values (e.g. each
    decode step's lengths) without tracing again. Args may be ``jax.ShapeDtypeStruct`` except those a
    kernel's scalar prefetch depends on."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.closed = jax.make_jaxpr(lambda *a: fn(*a, **kwargs))(*args)
        self._memo: dict = {}

    def records(self, *args) -> WorkloadTrace:
        trace = WorkloadTrace()
        flat_args = jax.tree_util.tree_leaves(args)
        inputs = _top_inputs(flat_args)
        _walk(self.closed.jaxpr, lambda atoms: _concrete(self.closed, inputs, atoms), 1.0, trace, self._memo)
        return trace


def trace_workload(fn, *args, **kwargs) -> WorkloadTrace:
    """Records of everything ``fn(*args, **kwargs)`` executes, with concrete scalar-prefetch values."""
    return TracedWorkload(fn, *args, **kwargs).records(*args)


def _nbytes(aval) -> float:
    shape = getattr(aval, "shape", None)
    if shape is None or not hasattr(aval, "dtype"):
        return 0.0
    return float(np.prod(shape)) * np.dtype(aval.dtype).itemsize


def _scope(eqn) -> str:
    return str(eqn.source_info.name_stack)


def _concrete(closed, inputs, atoms) -> list[np.ndarray]:
    """Values of ``atoms`` (vars of ``closed``) from its inputs, evaluating only the eqns they depend on.

    ``inputs(positions)`` returns the values of the jaxpr's inputs at those positions (constvars first).
    The backward slice ignores effects on purpose: a kernel that writes a buffer in place cannot
    change a scalar computed before it.
    """
    wanted = list(atoms)
    if all(hasattr(a, "val") for a in wanted):
        return [np.asarray(a.val) for a in wanted]
    jaxpr = closed.jaxpr
    needed = {a for a in wanted if not hasattr(a, "val")}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if any(out in needed for out in eqn.outvars):
            kept.append(eqn)
            needed.update(v for v in eqn.invars if not hasattr(v, "val"))
    all_inputs = list(jaxpr.constvars) + list(jaxpr.invars)
    positions = [i for i, v in enumerate(all_inputs) if v in needed]
    n_consts = len(jaxpr.constvars)
    values = [closed.consts[i] for i in positions if i < n_consts]
    values += inputs([i - n_consts for i in positions if i >= n_consts])
    env = dict(zip([all_inputs[i] for i in positions], values))
    for eqn in reversed(kept):
        args = [a.val if hasattr(a, "val") else env[a] for a in eqn.invars]
        sub = eqn.primitive.bind(*args, **eqn.params)
        outs = sub if eqn.primitive.multiple_results else [sub]
        env.update(zip(eqn.outvars, outs))
    return [np.asarray(a.val if hasattr(a, "val") else env[a]) for a in wanted]


def _top_inputs(flat_args):
    def inputs(positions):
        values = [flat_args[i] for i in positions]
        if any(isinstance(v, jax.ShapeDtypeStruct) for v in values):
            raise NotStatic("a kernel's scalar-prefetch operand depends on an abstract (shape-only) argument")
        return values
    return inputs


def _walk(jaxpr, resolve, weight: float, trace: WorkloadTrace, memo: dict, prefix: str = "") -> None:
    """Record every eqn; ``resolve(atoms)`` gives concrete values of this jaxpr's vars (None inside loops).

    ``prefix`` is the named scope of the enclosing call, so ops inside a jitted kernel wrapper keep
    the caller's ``jax.named_scope`` labels."""
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        scope = "/".join(p for p in (prefix, _scope(eqn)) if p)
        if name == "pallas_call":
            n_prefetch = eqn.params["grid_mapping"].num_index_operands
            prefetch = []
            if n_prefetch:
                if resolve is None:
                    raise NotStatic("scalar-prefetch operands of a kernel inside a loop are not static")
                prefetch = resolve(eqn.invars[:n_prefetch])
            key = (id(eqn), tuple(np.asarray(p).tobytes() for p in prefetch))
            if key not in memo:
                memo[key] = record_pallas_call(eqn, prefetch, scope, 1.0)
            trace.kernels.append(dataclasses.replace(memo[key], weight=weight, scope=scope))
        elif name == "dot_general":
            batch, m, k, n, in_b = _dot_shape(eqn)
            trace.matmuls.append(XlaMatmul(scope, batch, m, k, n, in_b,
                                           np.dtype(eqn.outvars[0].aval.dtype).itemsize, weight))
        elif name == "scan":
            body = eqn.params["jaxpr"]
            consts = eqn.params["num_consts"]
            _walk(body.jaxpr, _inner_resolver(resolve, eqn, body, known=consts), weight * eqn.params["length"], trace, memo, scope)
        elif name == "while":
            _walk(eqn.params["body_jaxpr"].jaxpr, None, weight * _fori_trip_count(eqn), trace, memo, scope)
        elif name == "cond":
            raise NotStatic("a data-dependent branch (lax.cond) in the workload cannot be counted")
        elif name in _CALLS:
            inner = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr") or eqn.params.get("fun_jaxpr")
            _walk(getattr(inner, "jaxpr", inner), _inner_resolver(resolve, eqn, inner), weight, trace, memo, scope)
        elif name not in _FREE:
            moved = _moved_bytes(eqn)
            elements = sum(float(np.prod(getattr(v.aval, "shape", ()))) for v in eqn.outvars)
            if moved:
                trace.ops.append(XlaOp(name, scope, moved, elements, weight))


def _moved_bytes(eqn) -> float:
    """Bytes an op left to XLA reads and writes: all operands and results, except that indexed reads
    touch only the rows they return and in-place updates only the rows they write."""
    name = eqn.primitive.name
    indices = sum(_nbytes(v.aval) for v in eqn.invars[1:] if not hasattr(v, "val"))
    if name in ("gather", "dynamic_slice", "slice"):
        out = sum(_nbytes(v.aval) for v in eqn.outvars)
        return 2 * out + (indices if name != "slice" else 0)
    if name in ("dynamic_update_slice", "scatter", "scatter-add", "scatter_add"):
        update = _nbytes(eqn.invars[-1].aval) if name != "dynamic_update_slice" else _nbytes(eqn.invars[1].aval)
        return 2 * update
    return sum(_nbytes(v.aval) for v in eqn.invars if not hasattr(v, "val")) + sum(_nbytes(v.aval) for v in eqn.outvars)


def _inner_resolver(resolve, eqn, inner, known: int | None = None):
    """Concrete values inside a call or loop body, computed lazily from the caller's.

    Only the first ``known`` inputs (a loop's constants; all of a call's) have values; a kernel whose
    scalar-prefetch operands depend on anything else (a loop carry) is not static.
    """
    if resolve is None or not hasattr(inner, "consts"):
        return None
    known = len(eqn.invars) if known is None else known

    def inputs(positions):
        if any(i >= known for i in positions):
            raise NotStatic("a kernel's scalar-prefetch operand depends on a loop carry")
        return resolve([eqn.invars[i] for i in positions])

    return lambda atoms: _concrete(inner, inputs, atoms)


def _fori_trip_count(eqn) -> int:
    """Trip count of a ``fori_loop``-shaped while: ``i < upper`` with literal bounds."""
    cond = eqn.params["cond_jaxpr"]
    n_consts = eqn.params["cond_nconsts"]
    body_nconsts = eqn.params["body_nconsts"]
    inits = eqn.invars[n_consts + body_nconsts:]
    cond_eqns = cond.jaxpr.eqns
    if len(cond_eqns) == 1 and cond_eqns[0].primitive.name == "lt":
        lhs, rhs = cond_eqns[0].invars
        pos = {v: i for i, v in enumerate(cond.jaxpr.invars[n_consts:])}
        if lhs in pos and rhs in pos and all(hasattr(inits[pos[v]], "val") for v in (lhs, rhs)):
            return int(inits[pos[rhs]].val) - int(inits[pos[lhs]].val)
        if lhs in pos and hasattr(rhs, "val") and hasattr(inits[pos[lhs]], "val"):
            return int(rhs.val) - int(inits[pos[lhs]].val)
    raise NotStatic("a while loop whose trip count is not a literal fori_loop bound")
