"""Walk a whole workload's jaxpr: each pallas_call, each XLA matmul and each other op, with loop trip counts.

``trace_workload(fn, *args)`` traces ``fn`` once with ``jax.make_jaxpr`` and returns chip-independent
records; ``accelsim.cost.workload`` prices them on a chip. Loop bodies count once per iteration
(``scan`` length, ``fori_loop`` bounds), which is what ``jax.experimental.roofline`` and XLA's
``cost_analysis()`` do not do.
"""

from __future__ import annotations

import warnings
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


def trace_workload(fn, *args, **kwargs) -> WorkloadTrace:
    """Records of everything ``fn(*args, **kwargs)`` executes, with concrete scalar-prefetch values."""
    closed = jax.make_jaxpr(lambda *a: fn(*a, **kwargs))(*args)
    trace = WorkloadTrace()
    flat_args = jax.tree_util.tree_leaves(args)
    _walk(closed.jaxpr, lambda atoms: _concrete(closed, flat_args, atoms), 1.0, trace)
    return trace


def _nbytes(aval) -> float:
    shape = getattr(aval, "shape", None)
    if shape is None or not hasattr(aval, "dtype"):
        return 0.0
    return float(np.prod(shape)) * np.dtype(aval.dtype).itemsize


def _scope(eqn) -> str:
    return str(eqn.source_info.name_stack)


def _concrete(closed, flat_args, atoms) -> list[np.ndarray]:
    """Values of ``atoms`` (top-level vars) computed from the workload's arguments (dead code pruned)."""
    from jax._src.interpreters import partial_eval as pe

    wanted = list(atoms)
    if all(hasattr(a, "val") for a in wanted):
        return [np.asarray(a.val) for a in wanted]
    jaxpr = closed.jaxpr.replace(outvars=wanted, debug_info=None)
    jaxpr = jaxpr.replace(constvars=[], invars=list(jaxpr.constvars) + list(jaxpr.invars))
    with warnings.catch_warnings():  # the pruned jaxpr carries no DebugInfo; jax warns about that
        warnings.simplefilter("ignore", DeprecationWarning)
        sub, used = pe.dce_jaxpr(jaxpr, [True] * len(wanted))
    inputs = [x for x, u in zip(list(closed.consts) + list(flat_args), used) if u]
    if any(x is None for x in inputs):
        raise NotStatic("a kernel's scalar-prefetch operand depends on a loop carry")
    return [np.asarray(v) for v in jax.core.eval_jaxpr(sub, [], *inputs)]


def _walk(jaxpr, resolve, weight: float, trace: WorkloadTrace) -> None:
    """Record every eqn; ``resolve(atoms)`` gives concrete values of this jaxpr's vars (None inside loops)."""
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "pallas_call":
            n_prefetch = eqn.params["grid_mapping"].num_index_operands
            prefetch = []
            if n_prefetch:
                if resolve is None:
                    raise NotStatic("scalar-prefetch operands of a kernel inside a loop are not static")
                prefetch = resolve(eqn.invars[:n_prefetch])
            trace.kernels.append(record_pallas_call(eqn, prefetch, _scope(eqn), weight))
        elif name == "dot_general":
            batch, m, k, n, in_b = _dot_shape(eqn)
            trace.matmuls.append(XlaMatmul(_scope(eqn), batch, m, k, n, in_b,
                                           np.dtype(eqn.outvars[0].aval.dtype).itemsize, weight))
        elif name == "scan":
            body = eqn.params["jaxpr"]
            consts = eqn.params["num_consts"]
            _walk(body.jaxpr, _inner_resolver(resolve, eqn, body, known=consts), weight * eqn.params["length"], trace)
        elif name == "while":
            _walk(eqn.params["body_jaxpr"].jaxpr, None, weight * _fori_trip_count(eqn), trace)
        elif name == "cond":
            raise NotStatic("a data-dependent branch (lax.cond) in the workload cannot be counted")
        elif name in _CALLS:
            inner = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr") or eqn.params.get("fun_jaxpr")
            _walk(getattr(inner, "jaxpr", inner), _inner_resolver(resolve, eqn, inner), weight, trace)
        elif name not in _FREE:
            moved = sum(_nbytes(v.aval) for v in eqn.invars if not hasattr(v, "val")) + sum(_nbytes(v.aval) for v in eqn.outvars)
            elements = sum(float(np.prod(getattr(v.aval, "shape", ()))) for v in eqn.outvars)
            if moved:
                trace.ops.append(XlaOp(name, _scope(eqn), moved, elements, weight))


def _inner_resolver(resolve, eqn, inner, known: int | None = None):
    """Concrete values inside a call or loop body, computed lazily from the caller's.

    Only the first ``known`` inputs (a loop's constants; all of a call's) have values; a kernel whose
    scalar-prefetch operands depend on anything else (a loop carry) is not static.
    """
    if resolve is None or not hasattr(inner, "consts"):
        return None
    known = len(eqn.invars) if known is None else known

    def inner_values(atoms):
        outer = resolve(list(eqn.invars[:known])) + [None] * (len(eqn.invars) - known)
        return _concrete(inner, outer, atoms)

    return inner_values


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
