"""Evaluate the scalar arithmetic of a Pallas kernel (index maps, branch predicates) over its grid.

Values are numpy arrays broadcastable to the grid (``accelsim.cost.blocks.grid_axes``): a value has
extent 1 along every grid axis it does not depend on, so an index map is evaluated on the sub-grid of
the axes it reads, never on every step. Only the integer/boolean scalar primitives that index maps
and ``pl.when`` predicates use are supported; anything else is reported as data-dependent.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from jax import tree_util

from accelsim.errors import AccelsimError
from accelsim.cost.blocks import as_grid_array, grid_axes

try:  # jax < 0.11 has ClosedJaxpr and Literal in jax.core; later versions merge ClosedJaxpr into Jaxpr
    from jax.extend.core import Literal
except ImportError:  # pragma: no cover
    from jax.core import Literal


class NotStatic(AccelsimError):
    """The value depends on array data, not only on grid indices and scalar-prefetch operands.

    The workload tracer sets ``primitive`` and ``scope`` (its ``jax.named_scope``) to where it was raised.
    An ``AccelsimError``, so one that reaches the command line is one line, never a traceback."""

    primitive: str = ""
    scope: str = ""


def _int_div(x, y):
    q = np.abs(x) // np.abs(y)
    return np.where(np.sign(x) * np.sign(y) < 0, -q, q)


def _int_rem(x, y):
    return x - _int_div(x, y) * y


def _convert(x, new_dtype=None, **_):
    return np.asarray(x).astype(np.dtype(new_dtype))


_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum, "min": np.minimum,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal,
    "ne": np.not_equal, "and": np.logical_and, "or": np.logical_or,
}


def _apply(eqn, args: list[Any]) -> list[Any]:
    name, params = eqn.primitive.name, eqn.params
    if name in _BINARY:
        fn = _BINARY[name]
        if name in ("and", "or") and all(np.asarray(a).dtype != bool for a in args):
            fn = np.bitwise_and if name == "and" else np.bitwise_or
        return [fn(*args)]
    if name == "div":
        x, y = args
        return [_int_div(x, y) if np.issubdtype(np.asarray(x).dtype, np.integer) else x / y]
    if name == "rem":
        return [_int_rem(*args)]
    if name == "neg":
        return [np.negative(args[0])]
    if name == "not":
        return [np.logical_not(args[0]) if np.asarray(args[0]).dtype == bool else np.invert(args[0])]
    if name == "convert_element_type":
        return [_convert(args[0], **params)]
    if name == "select_n":
        which, *cases = args
        return [np.choose(np.asarray(which).astype(np.int64), cases)]
    if name == "clamp":
        lo, x, hi = args
        return [np.minimum(np.maximum(x, lo), hi)]
    if name == "integer_pow":
        return [np.power(args[0], params["y"])]
    if name in ("squeeze", "reshape", "broadcast_in_dim") and math.prod(getattr(eqn.invars[0].aval, "shape", ())) == 1:
        return [args[0]]  # a one-element value keeps its grid-broadcast form
    raise NotStatic(f"primitive '{name}' in kernel scalar arithmetic")


def read(env: dict, atom) -> Any:
    if isinstance(atom, Literal):
        return np.asarray(atom.val)
    if atom not in env:
        raise NotStatic(f"value {atom} depends on array data")
    return env[atom]


def eval_scalar_jaxpr(jaxpr, env: dict, refs: dict, grid: tuple[int, ...] = ()) -> dict:
    """Evaluate every scalar eqn of ``jaxpr`` whose inputs are known; ``refs`` maps ref vars to arrays.

    ``program_id``/``num_programs`` read the grid (``grid_axes`` form). Returns ``env`` extended in
    place. Eqns that can't be evaluated are skipped, so their outputs stay unknown and anything
    reading them raises ``NotStatic``.
    """
    for eqn in jaxpr.eqns:
        try:
            name = eqn.primitive.name
            if name == "program_id":
                env[eqn.outvars[0]] = grid_axes(grid)[eqn.params["axis"]]
            elif name == "num_programs":
                env[eqn.outvars[0]] = np.asarray(grid[eqn.params["axis"]])
            elif name == "get" and eqn.invars[0] in refs:
                env[eqn.outvars[0]] = _get(eqn, env, refs)
            elif name in ("pjit", "jit", "closed_call"):
                inner = eqn.params["jaxpr"]
                sub = dict(zip(inner.jaxpr.invars, [read(env, v) for v in eqn.invars]))
                eval_scalar_jaxpr(inner.jaxpr, sub, {}, grid)
                for out, inner_out in zip(eqn.outvars, inner.jaxpr.outvars):
                    env[out] = read(sub, inner_out)
            elif all(v.aval.shape == () for v in eqn.outvars if hasattr(v.aval, "shape")):
                for out, value in zip(eqn.outvars, _apply(eqn, [read(env, v) for v in eqn.invars])):
                    env[out] = value
        except NotStatic:
            continue
    return env


def _get(eqn, env: dict, refs: dict) -> Any:
    array = refs[eqn.invars[0]]
    transforms = tree_util.tree_unflatten(eqn.params["tree"], [read(env, v) for v in eqn.invars[1:]])
    index = []
    for indexer in transforms:
        for dim in indexer.indices:
            if hasattr(dim, "start") and hasattr(dim, "size"):
                raise NotStatic("sliced read of a scalar-prefetch operand")
            index.append(np.asarray(dim).astype(np.int64))
    return np.asarray(array)[tuple(index)]


def eval_index_map(index_map, grid: tuple[int, ...], prefetch: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Block coordinates of one BlockSpec over the grid: one array per block dim, broadcastable to ``grid``."""
    jaxpr = index_map.jaxpr
    n_grid = len(grid)
    env = dict(zip(jaxpr.invars[:n_grid], grid_axes(grid)))
    refs = dict(zip(jaxpr.invars[n_grid:], prefetch))
    env.update(zip(index_map.jaxpr.constvars, [np.asarray(c) for c in index_map.consts]))
    eval_scalar_jaxpr(jaxpr, env, refs)
    return tuple(as_grid_array(read(env, out), n_grid) for out in jaxpr.outvars)
