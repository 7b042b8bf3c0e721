"""Executed block transfers and block work of one ``pallas_call``, read from its jaxpr.

Transfers: every BlockSpec's index map is evaluated over the grid. A block is copied when its index
differs from the previous step's (Pallas's revisiting rule; outputs are written back when their
index is about to change, and at the end). Each copy moves the block's bytes clipped to the array.
Work: the kernel body's ``dot_general`` and ``exp`` ops are counted at every grid step whose
``pl.when`` branches actually run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from accelsim.trace.grid_eval import NotStatic, eval_index_map, eval_scalar_jaxpr, read

_CALLS = ("pjit", "jit", "closed_call", "custom_jvp_call", "custom_vjp_call", "remat", "checkpoint")


@dataclass
class Transfer:
    """Copies of one operand's blocks between main memory and on-chip memory."""

    operand: int
    direction: str  # "read" (main -> on-chip) or "write" (on-chip -> main)
    block_shape: tuple[int, ...]
    copies: int
    bytes: float
    first_bytes: float  # the first step's copy (what the prologue waits for)
    last_bytes: float   # the last write-back (what the epilogue waits for)
    indices: np.ndarray = field(repr=False, default=None)     # block index at every grid step
    step_bytes: np.ndarray = field(repr=False, default=None)  # clipped bytes of the block at every step
    copied: np.ndarray = field(repr=False, default=None)      # whether the block is copied at that step
    block_bytes: float = 0.0                                  # unclipped bytes of one block
    priced: dict = field(repr=False, default_factory=dict)   # per-chip results derived from this transfer


@dataclass
class KernelRecord:
    """One executed ``pallas_call``: its grid, transfers and per-step work, times ``weight`` calls."""

    name: str
    scope: str
    grid: tuple[int, ...]
    transfers: list[Transfer]
    dots: Counter = field(default_factory=Counter)  # (m, k, n, in_bytes) -> block products executed
    exps: float = 0.0
    weight: float = 1.0
    operand_bytes: float = 0.0  # every input and output array of the call, whole

    @property
    def parallel_blocks(self) -> int:
        """Grid points that can run on different units: all axes but the last (the sequential one)."""
        return int(np.prod(self.grid[:-1])) if len(self.grid) > 1 else 1

    @property
    def main_bytes(self) -> float:
        return sum(t.bytes for t in self.transfers)

    @property
    def flops(self) -> float:
        return sum(2.0 * m * k * n * c for (m, k, n, _), c in self.dots.items())


def _block_sizes(block_mapping) -> list[tuple[str, int]]:
    out = []
    for dim in block_mapping.block_shape:
        kind = type(dim).__name__
        size = getattr(dim, "block_size", None)
        out.append((kind, 1 if size is None else int(size)))
    return out


def _clipped_bytes(indices: np.ndarray, sizes: list[tuple[str, int]], shape: tuple[int, ...], itemsize: int) -> np.ndarray:
    """Bytes of each block copy: the block's extent clipped to the array, per dim, multiplied.

    Dims whose blocks all lie inside the array contribute a constant; only ragged dims are evaluated
    per step (the common case is one or two such dims over millions of steps)."""
    constant = float(itemsize)
    ragged = []
    for axis, ((kind, size), extent) in enumerate(zip(sizes, shape)):
        column = indices[:, axis]
        start_max = int(column.max()) if kind == "Element" else int(column.max()) * size
        start_min = int(column.min()) if kind == "Element" else int(column.min()) * size
        if start_min >= 0 and start_max + size <= extent:
            constant *= size
        else:
            start = column if kind == "Element" else column.astype(np.int64) * size
            ragged.append(np.clip(np.minimum(start + size, extent) - start, 0, size))
    total = np.full(indices.shape[0], constant)
    for valid in ragged:
        total *= valid
    return total


def _is_unblocked_memory(block_mapping) -> bool:
    """Operands left in main memory (``memory_space=ANY``) are not copied by the pipeline."""
    space = getattr(block_mapping.transformed_block_aval, "memory_space", None)
    return space is not None and str(space).lower().split(".")[-1] in ("any", "hbm")


def kernel_transfers(grid_mapping, prefetch: list[np.ndarray]) -> list[Transfer]:
    """Block copies of every input and output of a pallas_call, under the revisiting rule."""
    grid = tuple(int(g) for g in grid_mapping.grid)
    n_in = grid_mapping.num_inputs
    transfers = []
    for operand, bm in enumerate(grid_mapping.block_mappings):
        if _is_unblocked_memory(bm):
            continue
        indices = eval_index_map(bm.index_map_jaxpr, grid, prefetch)
        aval = bm.array_aval
        sizes = _block_sizes(bm)
        changed = np.ones(indices.shape[0], bool)
        if indices.shape[0] > 1:
            changed[1:] = np.any(indices[1:] != indices[:-1], axis=1)
        per_copy = _clipped_bytes(indices, sizes, tuple(aval.shape), np.dtype(aval.dtype).itemsize)
        is_output = operand >= n_in
        if is_output:  # written back at the last step of each run of equal indices
            written = np.roll(changed, -1)
            written[-1] = True
            copies_mask = written
        else:
            copies_mask = changed
        copied = per_copy[copies_mask]
        transfers.append(Transfer(
            operand=operand, direction="write" if is_output else "read",
            block_shape=tuple(s for _, s in sizes), copies=int(copies_mask.sum()), bytes=float(copied.sum()),
            first_bytes=float(per_copy[0]), last_bytes=float(per_copy[-1]),
            indices=indices, step_bytes=per_copy, copied=copies_mask,
            block_bytes=float(np.prod([s for _, s in sizes])) * np.dtype(aval.dtype).itemsize,
        ))
    return transfers


def kernel_work(body_jaxpr, grid: tuple[int, ...], prefetch_refs: dict) -> tuple[Counter, float]:
    """Block products (m, k, n, in_bytes) and exponentials executed over the whole grid."""
    steps = int(np.prod(grid)) if grid else 1
    dots: Counter = Counter()
    exps = [0.0]
    _count_body(body_jaxpr, {}, prefetch_refs, np.ones(steps, bool), 1.0, grid, dots, exps)
    return dots, exps[0]


def _count_body(jaxpr, env: dict, refs: dict, active: np.ndarray, weight: float, grid, dots: Counter, exps: list) -> None:
    eval_scalar_jaxpr(jaxpr, env, refs, grid)
    runs = float(active.sum()) * weight
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            dots[_dot_shape(eqn)[1:]] += runs * _dot_shape(eqn)[0]
        elif name in ("exp", "exp2"):
            exps[0] += runs * int(np.prod(eqn.outvars[0].aval.shape))
        elif name == "cond":
            try:
                index = np.broadcast_to(read(env, eqn.invars[0]), active.shape)
            except NotStatic as exc:
                raise NotStatic(f"a pl.when/cond in kernel body depends on array data ({exc})") from None
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


def _dot_shape(eqn) -> tuple[int, int, int, int, int]:
    """(batch, m, k, n, in_bytes) of a dot_general."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = eqn.invars[0].aval, eqn.invars[1].aval
    batch = int(np.prod([lhs.shape[d] for d in lb]))
    k = int(np.prod([lhs.shape[d] for d in lc]))
    m = int(np.prod([s for d, s in enumerate(lhs.shape) if d not in lc and d not in lb]))
    n = int(np.prod([s for d, s in enumerate(rhs.shape) if d not in rc and d not in rb]))
    return batch, m, k, n, np.dtype(lhs.dtype).itemsize


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
    operand_bytes = float(sum(np.prod(a.shape) * np.dtype(a.dtype).itemsize for a in operands))
    return KernelRecord(name=name, scope=scope, grid=grid, transfers=kernel_transfers(grid_mapping, prefetch),
                        dots=dots, exps=exps, weight=weight, operand_bytes=operand_bytes)
