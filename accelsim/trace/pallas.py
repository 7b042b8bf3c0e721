"""Executed block transfers and block work of one ``pallas_call``, read from its jaxpr.

Transfers: every BlockSpec's index map is evaluated over the grid in broadcast form and counted by
``accelsim.cost.blocks`` (Pallas's revisiting rule: a block is copied when its index changes between
consecutive steps; outputs are written back when their index is about to change, and at the end;
each copy moves the block's bytes clipped to the array). Work: the kernel body's ``dot_general`` and
``exp`` ops are counted at every grid step whose ``pl.when`` branches actually run, each product with
its operand and accumulator dtypes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from accelsim.cost.blocks import BlockStream, StreamCount, count_stream, count_true
from accelsim.dtypes import array_itemsize, dtype_bytes, dtype_name
from accelsim.trace.grid_eval import NotStatic, eval_index_map, eval_scalar_jaxpr, read

_CALLS = ("pjit", "jit", "closed_call", "custom_jvp_call", "custom_vjp_call", "remat", "checkpoint")


class Product(NamedTuple):
    """One block product's shape (m, k) x (k, n) and dtypes: both operands' and the accumulator's."""

    m: int
    k: int
    n: int
    lhs: str
    rhs: str
    acc: str

    @property
    def compute_dtype(self) -> str:
        """The dtype the matrix unit multiplies in: the operands', or the wider one when they differ."""
        return self.lhs if dtype_bytes(self.lhs) >= dtype_bytes(self.rhs) else self.rhs

    @property
    def in_bytes(self) -> float:
        return max(dtype_bytes(self.lhs), dtype_bytes(self.rhs))


@dataclass
class KernelRecord:
    """One executed ``pallas_call``: its grid, operand streams and per-step work, times ``weight`` calls."""

    name: str
    scope: str
    grid: tuple[int, ...]
    streams: tuple[BlockStream, ...]
    counts: tuple[StreamCount, ...]
    dots: Counter = field(default_factory=Counter)  # Product -> block products executed
    exps: float = 0.0
    weight: float = 1.0
    operand_bytes: float = 0.0  # every input and output array of the call, whole
    priced: dict = field(default_factory=dict, repr=False)  # per-chip results derived from the streams

    @property
    def parallel_blocks(self) -> int:
        """Grid points that can run on different units: all axes but the last (the sequential one)."""
        return int(np.prod(self.grid[:-1])) if len(self.grid) > 1 else 1

    @property
    def main_bytes(self) -> float:
        return sum(c.bytes for c in self.counts)

    @property
    def prologue_bytes(self) -> float:
        return sum(c.first_bytes for s, c in zip(self.streams, self.counts) if not s.is_output)

    @property
    def epilogue_bytes(self) -> float:
        return sum(c.last_bytes for s, c in zip(self.streams, self.counts) if s.is_output)

    @property
    def flops(self) -> float:
        return sum(2.0 * p.m * p.k * p.n * c for p, c in self.dots.items())


def _block_sizes(block_mapping) -> list[tuple[str, int]]:
    out = []
    for dim in block_mapping.block_shape:
        kind = type(dim).__name__
        size = getattr(dim, "block_size", None)
        out.append((kind, 1 if size is None else int(size)))
    return out


def _is_unblocked_memory(block_mapping) -> bool:
    """Operands left in main memory (``memory_space=ANY``) are not copied by the pipeline."""
    space = getattr(block_mapping.transformed_block_aval, "memory_space", None)
    return space is not None and str(space).lower().split(".")[-1] in ("any", "hbm")


def kernel_streams(grid_mapping, prefetch: list[np.ndarray]) -> list[BlockStream]:
    """The block stream of every pipelined input and output of a pallas_call."""
    grid = tuple(int(g) for g in grid_mapping.grid)
    streams = []
    for operand, bm in enumerate(grid_mapping.block_mappings):
        if _is_unblocked_memory(bm):
            continue
        sizes = _block_sizes(bm)
        aval = bm.array_aval
        streams.append(BlockStream(
            grid=grid, index=eval_index_map(bm.index_map_jaxpr, grid, prefetch),
            block_shape=tuple(size for _, size in sizes), array_shape=tuple(int(d) for d in aval.shape),
            itemsize=array_itemsize(aval.dtype), is_output=operand >= grid_mapping.num_inputs,
            element=tuple(kind == "Element" for kind, _ in sizes)))
    return streams


def kernel_work(body_jaxpr, grid: tuple[int, ...], prefetch_refs: dict) -> tuple[Counter, float]:
    """Block products and exponentials executed over the whole grid."""
    dots: Counter = Counter()
    exps = [0.0]
    _count_body(body_jaxpr, {}, prefetch_refs, np.ones((1,) * len(grid), bool), 1.0, grid, dots, exps)
    return dots, exps[0]


def _count_body(jaxpr, env: dict, refs: dict, active: np.ndarray, weight: float, grid, dots: Counter, exps: list) -> None:
    """``active``: where (broadcastable over the grid) this body runs."""
    eval_scalar_jaxpr(jaxpr, env, refs, grid)
    runs = count_true(active, grid) * weight
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            batch, product = dot_product(eqn)
            dots[product] += runs * batch
        elif name in ("exp", "exp2"):
            exps[0] += runs * int(np.prod(eqn.outvars[0].aval.shape))
        elif name == "cond":
            try:
                index = np.asarray(read(env, eqn.invars[0]))
            except NotStatic as exc:
                raise NotStatic(f"a pl.when/cond in kernel body depends on array data ({exc})") from None
            index = index.reshape((1,) * (len(grid) - index.ndim) + index.shape)
            for i, branch in enumerate(eqn.params["branches"]):
                taken = active & (index == i)
                if taken.any():
                    sub = _bind(branch.jaxpr, eqn.invars[1:], env)
                    _count_body(branch.jaxpr, sub, _bind_refs(branch.jaxpr, eqn.invars[1:], refs), taken, weight, grid, dots, exps)
        elif name == "scan":
            inner = eqn.params["jaxpr"].jaxpr
            _count_body(inner, _bind(inner, eqn.invars, env), {}, active, weight * eqn.params["length"], grid, dots, exps)
        elif name in _CALLS:
            closed = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr") or eqn.params.get("fun_jaxpr")
            inner = getattr(closed, "jaxpr", closed)
            _count_body(inner, _bind(inner, eqn.invars, env), _bind_refs(inner, eqn.invars, refs), active, weight, grid, dots, exps)
        elif name == "while":
            raise NotStatic("a while loop inside a kernel body has no static trip count")


def dot_product(eqn) -> tuple[int, Product]:
    """(batch, Product) of a dot_general: its (m, k, n) and its operand and accumulator dtypes."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = eqn.invars[0].aval, eqn.invars[1].aval
    batch = math.prod(lhs.shape[d] for d in lb)
    k = math.prod(lhs.shape[d] for d in lc)
    m = math.prod(s for d, s in enumerate(lhs.shape) if d not in lc and d not in lb)
    n = math.prod(s for d, s in enumerate(rhs.shape) if d not in rc and d not in rb)
    acc = eqn.params.get("preferred_element_type") or eqn.outvars[0].aval.dtype
    return batch, Product(int(m), int(k), int(n), dtype_name(lhs.dtype), dtype_name(rhs.dtype), dtype_name(acc))


def _bind(inner_jaxpr, outer_atoms, env: dict) -> dict:
    sub = {}
    for inner_var, atom in zip(inner_jaxpr.invars, outer_atoms):
        try:
            sub[inner_var] = read(env, atom)
        except NotStatic:
            pass
    return sub


def _bind_refs(inner_jaxpr, outer_atoms, refs: dict) -> dict:
    return {iv: refs[ov] for iv, ov in zip(inner_jaxpr.invars, outer_atoms) if not hasattr(ov, "val") and ov in refs}


def record_pallas_call(eqn, prefetch: list[np.ndarray], scope: str, weight: float) -> KernelRecord:
    """Transfers and work of one pallas_call eqn, given the concrete values of its scalar-prefetch operands."""
    grid_mapping = eqn.params["grid_mapping"]
    grid = tuple(int(g) for g in grid_mapping.grid)
    body = eqn.params["jaxpr"]
    body = getattr(body, "jaxpr", body)
    refs = dict(zip(body.invars[: grid_mapping.num_index_operands], prefetch))
    dots, exps = kernel_work(body, grid, refs)
    name = str(eqn.params.get("name") or getattr(eqn.params.get("metadata"), "name", "") or "pallas_call")
    operands = [v.aval for v in eqn.invars[grid_mapping.num_index_operands:] if not hasattr(v, "val")]
    operands += [v.aval for v in eqn.outvars]
    operand_bytes = float(sum(np.prod(a.shape) * array_itemsize(a.dtype) for a in operands))
    streams = tuple(kernel_streams(grid_mapping, prefetch))
    return KernelRecord(name=name, scope=scope, grid=grid, streams=streams,
                        counts=tuple(count_stream(s) for s in streams), dots=dots, exps=exps, weight=weight,
                        operand_bytes=operand_bytes)
