"""Walk a whole workload's jaxpr: each pallas_call, each XLA matmul and each other op, with loop trip counts.

``trace_workload(fn, *args)`` traces ``fn`` once with ``jax.make_jaxpr`` and returns chip-independent
records; ``accelsim.cost.workload`` prices them on a chip. Loop bodies count once per iteration
(``scan`` length, ``fori_loop`` bounds), which is what ``jax.experimental.roofline`` and XLA's
``cost_analysis()`` do not do. ``shard_map`` bodies are walked at their per-device shapes, and their
collectives recorded with the size of the mesh axes they run over (``accelsim.trace.collectives``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import jax
import numpy as np

from accelsim.dtypes import array_itemsize
from accelsim.trace.fusion import fuse_elementwise
from accelsim.trace.collectives import ALGORITHM_OF, Collective, collective_record
from accelsim.trace.grid_eval import NotStatic
from kernels.backend import lowering_for
from accelsim.trace.pallas import _CALLS, KernelRecord, Product, dot_product, record_pallas_call

# Ops that only relabel data; XLA emits no memory traffic for them.
_FREE = {"reshape", "squeeze", "expand_dims", "broadcast_in_dim", "bitcast_convert_type", "copy_p",
         "iota", "stop_gradient", "pvary", "optimization_barrier", "random_wrap", "random_unwrap",
         "random_seed", "random_bits", "threefry2x32", "sharding_constraint"}


@dataclass
class XlaMatmul:
    """A dot_general left to XLA (outside our kernels): ``batch`` products of one shape and dtype."""

    scope: str
    batch: int
    product: Product
    out_bytes: int
    weight: float = 1.0

    @property
    def flops(self) -> float:
        """FLOPs of one of the ``batch`` products."""
        return 2.0 * self.product.m * self.product.k * self.product.n

    @property
    def compulsory_bytes(self) -> float:
        """Bytes of one product's operands read once and its result written once."""
        p = self.product
        return (p.m * p.k + p.k * p.n) * p.in_bytes + p.m * p.n * self.out_bytes


@dataclass
class XlaOp:
    """Any other op left to XLA: it reads its inputs and writes its outputs once, less what XLA's fusion of
    elementwise chains keeps out of memory (``accelsim.trace.fusion``)."""

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
    collectives: list[Collective] = field(default_factory=list)
    # kernels whose scalar prefetch reads the arguments: (position in kernels, eqn, resolver, weight, scope)
    dynamic: list[tuple] = field(default_factory=list, repr=False)
    # records every re-reading shares, by id, each with its own {chip id: (chip, OpCost)} (accelsim.trace.price)
    shared: frozenset = field(default=frozenset(), repr=False)
    priced: dict = field(default_factory=dict, repr=False)


class TracedWorkload:
    """A workload traced once; ``records(*args)`` re-reads it for new scalar-prefetch values (e.g. each
    decode step's lengths) without tracing again. Args may be ``jax.ShapeDtypeStruct`` except those a
    kernel's scalar prefetch depends on.

    The jaxpr is walked once: only scalar prefetch depends on argument values, so a later call re-counts just
    the kernels that read it (each through the resolver the walk built) and keeps every other record."""

    def __init__(self, fn, *args, **kwargs) -> None:
        with lowering_for("interpret"):  # count the Pallas form (its BlockSpecs), whatever runs on this backend
            self.closed = jax.make_jaxpr(lambda *a: fn(*a, **kwargs))(*args)
        self._memo: dict = {}
        self._args: list = []
        self._walked: WorkloadTrace | None = None

    def records(self, *args) -> WorkloadTrace:
        self._args = jax.tree_util.tree_leaves(args)
        if self._walked is None:
            walked = WorkloadTrace()
            inputs = lambda positions: _top_inputs(self._args)(positions)  # noqa: E731  (reads each call's args)
            _walk(self.closed.jaxpr, lambda atoms, at_end=False: _concrete(self.closed, inputs, atoms), 1.0, walked,
                  self._memo)
            moving = {position for position, *_ in walked.dynamic}
            static = [k for i, k in enumerate(walked.kernels) if i not in moving]
            static += walked.matmuls + walked.ops + walked.collectives
            walked.shared = frozenset(id(r) for r in static)
            walked.priced = {id(r): (r, {}) for r in static}
            self._walked = walked
        else:
            walked = self._walked
        trace = WorkloadTrace(list(walked.kernels), list(walked.matmuls), list(walked.ops), list(walked.collectives),
                              shared=walked.shared, priced=walked.priced)
        for position, eqn, resolve, weight, scope in walked.dynamic:
            try:
                record = _kernel_record(eqn, resolve, self._memo)
            except NotStatic as exc:
                raise _located(exc, "pallas_call", scope) from None
            trace.kernels[position] = dataclasses.replace(record, weight=weight, scope=scope, priced=record.priced)
        return trace


def trace_workload(fn, *args, **kwargs) -> WorkloadTrace:
    """Records of everything ``fn(*args, **kwargs)`` executes, with concrete scalar-prefetch values."""
    return TracedWorkload(fn, *args, **kwargs).records(*args)


def _nbytes(aval) -> float:
    shape = getattr(aval, "shape", None)
    if shape is None or not hasattr(aval, "dtype"):
        return 0.0
    return float(np.prod(shape)) * array_itemsize(aval.dtype)


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
        numpy_form = _NUMPY.get(eqn.primitive.name)
        sub = numpy_form(*args, **eqn.params) if numpy_form else eqn.primitive.bind(*args, **eqn.params)
        outs = sub if eqn.primitive.multiple_results else [sub]
        env.update(zip(eqn.outvars, outs))
    return [np.asarray(a.val if hasattr(a, "val") else env[a]) for a in wanted]


def _iota(*, dtype, shape, dimension, **_) -> np.ndarray:
    ramp = np.arange(shape[dimension], dtype=np.dtype(dtype)).reshape([-1 if d == dimension else 1
                                                                      for d in range(len(shape))])
    return np.broadcast_to(ramp, shape)


def _reshape(x, *, new_sizes, dimensions=None, **_) -> np.ndarray:
    x = np.asarray(x)
    return np.reshape(x if dimensions is None else np.transpose(x, dimensions), new_sizes)


# Index plumbing in scalar-prefetch slices, evaluated in numpy: binding them would dispatch (and compile, at
# each new shape) an XLA op per step for what only relabels integers.
_NUMPY = {"iota": _iota, "reshape": _reshape}


def _top_inputs(flat_args):
    def inputs(positions):
        values = [flat_args[i] for i in positions]
        if any(isinstance(v, jax.ShapeDtypeStruct) for v in values):
            raise NotStatic("a kernel's scalar-prefetch operand depends on an abstract (shape-only) argument")
        return values
    return inputs


def _walk(jaxpr, resolve, weight: float, trace: WorkloadTrace, memo: dict, prefix: str = "",
          axis_sizes: dict | None = None) -> None:
    """Record every eqn; ``resolve(atoms)`` gives concrete values of this jaxpr's vars (None inside loops).

    ``prefix`` is the named scope of the enclosing call, so ops inside a jitted kernel wrapper keep
    the caller's ``jax.named_scope`` labels; ``axis_sizes`` are the mesh axes of enclosing shard_maps."""
    made = {}
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        scope = "/".join(p for p in (prefix, _scope(eqn)) if p)
        before = len(trace.ops)
        try:
            _walk_eqn(eqn, name, scope, resolve, weight, trace, memo, axis_sizes or {})
        except NotStatic as exc:
            raise _located(exc, name, scope) from None
        if len(trace.ops) == before + 1 and name not in _CALLS:
            made[id(eqn)] = trace.ops[-1]
    fuse_elementwise(jaxpr, made, _nbytes)


def _located(exc: NotStatic, primitive: str, scope: str) -> NotStatic:
    """``exc`` with the primitive and the named scope it was raised at, added once (the innermost)."""
    if exc.primitive:
        return exc
    located = NotStatic(f"{exc} (primitive '{primitive}' at scope '{scope or '<top level>'}')")
    located.primitive, located.scope = primitive, scope
    return located


def _walk_eqn(eqn, name: str, scope: str, resolve, weight: float, trace: WorkloadTrace, memo: dict,
              axis_sizes: dict) -> None:
    """Record one eqn of ``_walk``, descending into loop, call and shard_map bodies."""
    if name == "pallas_call":
        record = _kernel_record(eqn, resolve, memo)
        if eqn.params["grid_mapping"].num_index_operands:
            trace.dynamic.append((len(trace.kernels), eqn, resolve, weight, scope))
        trace.kernels.append(dataclasses.replace(record, weight=weight, scope=scope, priced=record.priced))
    elif name == "dot_general":
        batch, product = dot_product(eqn)
        trace.matmuls.append(XlaMatmul(scope, batch, product, array_itemsize(eqn.outvars[0].aval.dtype), weight))
    elif name == "scan":
        body = eqn.params["jaxpr"]
        consts = eqn.params["num_consts"]
        _walk(body.jaxpr, _inner_resolver(resolve, eqn, body, known=consts, xs_from=consts + eqn.params["num_carry"],
                                          length=eqn.params["length"]),
              weight * eqn.params["length"], trace, memo, scope, axis_sizes)
    elif name == "while":
        _walk(eqn.params["body_jaxpr"].jaxpr, None, weight * _fori_trip_count(eqn), trace, memo, scope, axis_sizes)
    elif name == "cond":
        raise NotStatic("a data-dependent branch (lax.cond): which branch runs depends on array data, so it "
                        "cannot be counted")
    elif name in _CALLS:
        inner = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr") or eqn.params.get("fun_jaxpr")
        _walk(getattr(inner, "jaxpr", inner), _inner_resolver(resolve, eqn, inner), weight, trace, memo, scope,
              axis_sizes)
    elif name == "shard_map":
        mesh = eqn.params["mesh"]
        _walk(eqn.params["jaxpr"], _shard_resolver(resolve, eqn), weight, trace, memo, scope,
              {**axis_sizes, **dict(zip(mesh.axis_names, mesh.axis_sizes))})
    elif name in ALGORITHM_OF:
        trace.collectives.append(collective_record(eqn, scope, weight, axis_sizes))
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


def _kernel_record(eqn, resolve, memo: dict) -> KernelRecord:
    """The record of one pallas_call, memoised by its scalar-prefetch values.

    Inside a scan, prefetch operands may come from the scan's xs (a layer index, say); the kernel is
    then counted at the first and the last iteration, and the two must agree, else it is not static."""
    n_prefetch = eqn.params["grid_mapping"].num_index_operands
    if not n_prefetch:
        return _memo_record(eqn, [], memo)
    if resolve is None:
        raise NotStatic("scalar-prefetch operands of a kernel inside a loop are not static")
    first = _memo_record(eqn, resolve(eqn.invars[:n_prefetch]), memo)
    last = _memo_record(eqn, resolve(eqn.invars[:n_prefetch], at_end=True), memo)
    if last is not first and (last.counts != first.counts or last.dots != first.dots or last.exps != first.exps):
        raise NotStatic("a kernel's scalar-prefetch operands change its copies between loop iterations")
    return first


def _memo_record(eqn, prefetch: list, memo: dict) -> KernelRecord:
    key = (id(eqn), tuple(np.asarray(p).tobytes() for p in prefetch))
    if key not in memo:
        memo[key] = record_pallas_call(eqn, prefetch, "", 1.0)
    return memo[key]


def _inner_resolver(resolve, eqn, inner, known: int | None = None, xs_from: int | None = None, length: int = 1):
    """Concrete values inside a call or loop body, computed lazily from the caller's.

    The first ``known`` inputs (a loop's constants; all of a call's) have values; a scan's xs (inputs
    from ``xs_from`` on) have the value of the first iteration, or of the last with ``at_end``; a
    kernel whose scalar-prefetch operands depend on anything else (a loop carry) is not static.
    """
    if resolve is None or not hasattr(inner, "consts"):
        return None
    known = len(eqn.invars) if known is None else known

    def inputs(positions, at_end=False):
        values = []
        for i in positions:
            if i < known:
                values.append(resolve([eqn.invars[i]], at_end=at_end)[0])
            elif xs_from is not None and i >= xs_from:
                values.append(np.asarray(resolve([eqn.invars[i]], at_end=at_end)[0])[length - 1 if at_end else 0])
            else:
                raise NotStatic("a kernel's scalar-prefetch operand depends on a loop carry")
        return values

    return lambda atoms, at_end=False: _concrete(inner, lambda positions: inputs(positions, at_end), atoms)


def _shard_resolver(resolve, eqn):
    """Concrete values inside a shard_map body: each input as device 0 sees it (its first block along
    every sharded dimension)."""
    if resolve is None:
        return None
    from jax.extend.core import ClosedJaxpr

    mesh, specs = eqn.params["mesh"], eqn.params["in_specs"]
    sizes = dict(zip(mesh.axis_names, mesh.axis_sizes))

    def first_shard(value, spec):
        value = np.asarray(value)
        index = []
        for dim, axes in enumerate(tuple(spec) + (None,) * (value.ndim - len(spec))):
            names = () if axes is None else (axes if isinstance(axes, tuple) else (axes,))
            index.append(slice(0, value.shape[dim] // int(np.prod([sizes[a] for a in names]))))
        return value[tuple(index)]

    def inputs(positions, at_end=False):
        return [first_shard(resolve([eqn.invars[i]], at_end=at_end)[0], specs[i]) for i in positions]

    closed = ClosedJaxpr(eqn.params["jaxpr"], [])
    return lambda atoms, at_end=False: _concrete(closed, lambda positions: inputs(positions, at_end), atoms)


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
    raise NotStatic("a while loop with a data-dependent trip count (only a fori_loop with static bounds can be "
                    "counted)")
