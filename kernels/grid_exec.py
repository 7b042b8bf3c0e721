"""A compiled CPU executor for our Pallas kernels: the same kernel body, BlockSpecs and blocks, run by XLA.

``grid_call`` takes what ``pl.pallas_call`` takes. The parallel grid axes (all but the last) are
batched with one ``jax.vmap`` each; the last axis is a ``lax.scan`` that carries the output blocks and the
scratch buffers (our output index maps ignore it: an output block stays resident across it). An input
whose index map returns grid indices and literals (a matmul's A and B, attention's Q) is cut into all its
blocks at once by a reshape and a transpose, mapped by the vmaps and stepped by the scan; one whose index
is computed (clamped, from a page table) is sliced at each step with ``lax.dynamic_slice`` at the index
map's block indices. Each step runs the kernel body through ``run_state`` (refs over the output blocks and scratch), with
``pl.program_id`` answered from a Pallas grid environment. Each output block is written once.
When an output's index map reads the last axis, every axis is parallel (one step per program).

Operands are padded to whole blocks with NaN (as interpret mode pads out-of-bounds block elements),
so a kernel that masks its ragged edges for interpret mode is correct here too. Scalar-prefetch
operands are passed to the index maps and the body as arrays (read-only, indexed like refs);
``memory_space=ANY`` operands are passed whole.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax._src import core as jax_core
from jax._src.pallas import core as pallas_core
from jax._src.state.discharge import run_state_reference


def _dims(spec, shape: tuple[int, ...]) -> tuple[list[int], list[bool]] | None:
    """Block sizes and squeezed flags of a BlockSpec over ``shape``; None when it takes the whole array."""
    block = getattr(spec, "block_shape", None)
    if spec is None or block is None or getattr(spec, "index_map", None) is None:
        return None
    squeezed = [d is None or isinstance(d, pallas_core.Squeezed) for d in block]
    sizes = [1 if sq else int(getattr(d, "block_size", d)) for d, sq in zip(block, squeezed)]
    return sizes, squeezed


def _pad(x: jax.Array, sizes: Sequence[int]) -> jax.Array:
    """x padded at the end of each dim to a multiple of its block size (NaN for floats, zero otherwise)."""
    pads = [(0, -n % s, 0) for n, s in zip(x.shape, sizes)]
    if not any(hi for _, hi, _ in pads):
        return x
    fill = jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else 0
    return lax.pad(x, jnp.asarray(fill, x.dtype), pads)


def _block(x: jax.Array, spec, dims, ids, prefetch) -> jax.Array:
    sizes, squeezed = dims
    index = spec.index_map(*ids, *prefetch)
    starts = [jnp.asarray(i, jnp.int32) * s for i, s in zip(index, sizes)]
    blk = lax.dynamic_slice(x, starts, sizes)
    return blk.reshape([s for s, sq in zip(sizes, squeezed) if not sq])


def _uses_last_axis(spec, grid: tuple[int, ...], prefetch: Sequence[jax.Array]) -> bool:
    """Whether ``spec``'s index map reads the last grid index (traced once, abstractly)."""
    n = len(grid)
    jaxpr = jax.make_jaxpr(spec.index_map)(*[jnp.int32(0)] * n, *prefetch).jaxpr
    last = jaxpr.invars[n - 1]
    return any(last in eqn.invars for eqn in jaxpr.eqns) or last in jaxpr.outvars


def grid_call(kernel: Callable, *, grid: tuple[int, ...], in_specs: Sequence, out_specs, out_shape,
              scratch_shapes: Sequence = (), num_scalar_prefetch: int = 0,
              input_output_aliases: dict[int, int] | None = None, loop_axes: tuple[int, ...] = ()) -> Callable:
    """A function of the kernel's operands (prefetch operands first) that runs ``kernel`` over ``grid``.

    ``loop_axes``: parallel axes run one program after another (``lax.map``) instead of batched: where the
    body's ``pl.when`` tests such an axis (causal attention's q block), a batched test would run both
    branches for every program, and a looped one skips the work, as the Pallas form does."""
    single = not isinstance(out_specs, (list, tuple))
    out_specs = [out_specs] if single else list(out_specs)
    out_shape = [out_shape] if single else list(out_shape)
    aliases = {o: i - num_scalar_prefetch for i, o in (input_output_aliases or {}).items()}

    def run(*operands):
        prefetch, inputs = operands[:num_scalar_prefetch], operands[num_scalar_prefetch:]
        sequential = not any(_uses_last_axis(s, grid, prefetch) for s in out_specs)
        par_grid = tuple(grid[:-1]) if sequential else tuple(grid)
        steps = grid[-1] if sequential else 1
        in_dims = [_dims(s, x.shape) for s, x in zip(in_specs, inputs)]
        inputs = [x if d is None else _pad(x, d[0]) for x, d in zip(inputs, in_dims)]
        out_dims = [_dims(s, o.shape) for s, o in zip(out_specs, out_shape)]

        plans = [None if d is None else _structure(s, d, x.shape, grid, prefetch) for s, d, x in
                 zip(in_specs, in_dims, inputs)]
        seq_axis = len(grid) - 1 if sequential else None
        staged = {k: _staged_blocks(x, in_dims[k], plan) for k, (x, plan) in
                  enumerate(zip(inputs, plans)) if plan is not None}
        along_steps = [k for k in staged if seq_axis is not None and seq_axis in staged[k][1]]

        def program(par, held):
            par = [jnp.asarray(i, jnp.int32) for i in par]

            def step(carry, xs):
                j, stepped = xs
                ids = par + ([j] if sequential else [])
                blocks = [stepped[k] if k in stepped else held[k] if k in held else
                          x if d is None else _block(x, s, d, ids, prefetch)
                          for k, (x, s, d) in enumerate(zip(inputs, in_specs, in_dims))]
                env = [pallas_core.GridAxis(i, n) for i, n in zip(ids, grid)]

                def body(refs):
                    with pallas_core.grid_env(env):
                        kernel(*prefetch, *blocks, *refs)

                return tuple(run_state_reference(body)(carry)), None

            stepped = {k: held[k] for k in along_steps}
            first = par + ([jnp.int32(0)] if sequential else [])
            init = [_initial(o, k, s, d, first, prefetch, inputs, aliases) for k, (o, s, d) in
                    enumerate(zip(out_shape, out_specs, out_dims))]
            init += [jnp.zeros(sc.shape, sc.dtype) for sc in scratch_shapes]
            if steps == 1:  # no loop to build
                final, _ = step(tuple(init), (jnp.int32(0), {k: v[0] for k, v in stepped.items()}))
            else:
                final, _ = lax.scan(step, tuple(init), (jnp.arange(steps, dtype=jnp.int32), stepped))
            index = [jnp.stack([jnp.asarray(i, jnp.int32) for i in s.index_map(*first, *prefetch)])
                     for s in out_specs]
            return final[:len(out_shape)], index

        count = math.prod(par_grid)
        mapped = program
        for axis in reversed(range(len(par_grid))):  # one map per axis, nested: an operand a map ignores stays whole
            where = {k: _position(labels, axis, seq_axis) for k, (_, labels) in staged.items()}
            mapped = (_loop(mapped, axis, where) if axis in loop_axes else
                      jax.vmap(mapped, in_axes=(tuple(0 if a == axis else None for a in range(len(par_grid))), where)))
        blocks, indices = mapped(tuple(jnp.arange(n, dtype=jnp.int32) for n in par_grid),
                                 {k: b for k, (b, _) in staged.items()})
        outs = []
        for k, (o, spec, d, b, idx) in enumerate(zip(out_shape, out_specs, out_dims, blocks, indices)):
            tiling = None if k in aliases else _tiling(spec, d, o.shape, grid, prefetch, len(par_grid))
            if tiling is not None:
                outs.append(_unstage(o, d, b, tiling))
            else:
                outs.append(_assemble(o, d, b.reshape((count, *b.shape[len(par_grid):])),
                                      idx.reshape((count, -1)), inputs[aliases[k]] if k in aliases else None, count))
        return outs[0] if single else outs

    return run


def _loop(fn: Callable, axis: int, where: dict[int, int | None]) -> Callable:
    """``fn(ids, held)`` mapped over grid axis ``axis`` by ``lax.map``, as ``jax.vmap`` would batch it (a held
    operand's count axis for ``axis`` at ``where[k]``)."""
    def looped(ids, held):
        along = {k: jnp.moveaxis(v, where[k], 0) for k, v in held.items() if where[k] is not None}

        def one(xs):
            i, part = xs
            return fn(ids[:axis] + (i,) + ids[axis + 1:], {**held, **part})

        return lax.map(one, (ids[axis], along))

    return looped


def _structure(spec, dims, shape: tuple[int, ...], grid: tuple[int, ...], prefetch) -> list | None:
    """Per array dim, ('axis', a) when the index map returns grid index ``a`` there or ('const', c) for a
    literal (or the dim's only block); None when any dim is computed (clamped, from a page table), or one grid
    index feeds two dims: those operands are sliced at each step instead."""
    n = len(grid)
    jaxpr = jax.make_jaxpr(spec.index_map)(*[jnp.int32(0)] * n, *prefetch).jaxpr
    grid_vars = jaxpr.invars[:n]
    plan = []
    for out, size, extent in zip(jaxpr.outvars, dims[0], shape):
        if extent <= size:
            plan.append(("const", 0))
        elif isinstance(out, jax_core.Literal):
            plan.append(("const", int(out.val)))
        elif any(out is v for v in grid_vars):
            plan.append(("axis", next(a for a, v in enumerate(grid_vars) if out is v)))
        else:
            return None
    axes = [a for kind, a in plan if kind == "axis"]
    return plan if len(set(axes)) == len(axes) else None


def _staged_blocks(x: jax.Array, dims, plan: list) -> tuple[jax.Array, tuple]:
    """Every block of ``x`` at once, laid out (one axis per grid axis it follows, in grid order, then the block):
    a reshape and one transpose, so the vmapped programs and the scan read their blocks with no gather.
    Returns the blocks and, per axis, the grid axis it follows (None for the block's axes)."""
    sizes, squeezed = dims
    split = x.reshape([v for n, s in zip(x.shape, sizes) for v in (n // s, s)])
    split = split[tuple(i for (kind, c) in plan for i in (c if kind == "const" else slice(None), slice(None)))]
    position, follows, block_axes = 0, {}, []
    for kind, a in plan:
        if kind == "axis":
            follows[a] = position
            position += 1
        block_axes.append(position)
        position += 1
    order = sorted(follows)
    staged = split.transpose([follows[a] for a in order] + block_axes)
    lead = staged.shape[:len(order)]
    blocks = staged.reshape(*lead, *[s for s, sq in zip(sizes, squeezed) if not sq])
    return blocks, tuple(order) + (None,) * (blocks.ndim - len(order))


def _position(labels: tuple, axis: int, seq_axis: int | None) -> int | None:
    """Where grid axis ``axis``'s count axis lies once the vmaps of the parallel axes before it have mapped theirs."""
    live = [lab for lab in labels if lab is None or lab == seq_axis or lab >= axis]
    return live.index(axis) if axis in live else None


def _initial(out, k: int, spec, dims, ids, prefetch, inputs, aliases) -> jax.Array:
    """An output block's starting value: the aliased input's block, else zeros."""
    sizes, squeezed = dims
    shape = [s for s, sq in zip(sizes, squeezed) if not sq]
    if k in aliases:
        return _block(_pad(inputs[aliases[k]], sizes), spec, dims, ids, prefetch).astype(out.dtype)
    return jnp.zeros(shape, out.dtype)


def _tiling(spec, dims, shape: tuple[int, ...], grid: tuple[int, ...], prefetch, parallel: int) -> list | None:
    """An output's ``_structure`` when its programs' blocks tile it exactly (each parallel axis picks the block
    along one dim, every other dim is one block), so it is put together by a transpose, not block by block."""
    padded = tuple(-(-n // s) * s for n, s in zip(shape, dims[0]))
    plan = _structure(spec, dims, padded, grid, prefetch)
    if plan is None or sorted(a for kind, a in plan if kind == "axis") != [a for a in range(parallel) if grid[a] > 1]:
        return None
    return plan if all(kind == "axis" or n <= s for (kind, _), n, s in zip(plan, padded, dims[0])) else None


def _unstage(out, dims, blocks: jax.Array, plan: list) -> jax.Array:
    """The output from the programs' blocks (one axis per parallel grid axis, then the block):
    ``_staged_blocks`` backwards."""
    sizes, _ = dims
    axes = sorted(a for kind, a in plan if kind == "axis")
    parallel = len(axes)
    blocks = blocks.reshape((*[blocks.shape[a] for a in axes], *sizes))  # the other parallel axes have extent 1
    order = [i for d, (kind, a) in enumerate(plan)
             for i in ((axes.index(a),) if kind == "axis" else ()) + (parallel + d,)]
    padded = [-(-n // s) * s for n, s in zip(out.shape, sizes)]
    full = blocks.transpose(order).reshape(padded)
    return full[tuple(slice(0, n) for n in out.shape)]


def _assemble(out, dims, blocks: jax.Array, index: jax.Array, aliased: jax.Array | None, count: int) -> jax.Array:
    """The output array from the per-program blocks at their block indices (over the aliased input, if any)."""
    sizes, _ = dims
    padded = [-(-n // s) * s for n, s in zip(out.shape, sizes)]
    base = jnp.zeros(padded, out.dtype) if aliased is None else _pad(aliased.astype(out.dtype), sizes)
    blocks = blocks.reshape((count, *sizes))
    starts = index * jnp.asarray(sizes, jnp.int32)

    def place(p, acc):
        return lax.dynamic_update_slice(acc, blocks[p], list(starts[p]))

    full = lax.fori_loop(0, count, place, base)
    return full[tuple(slice(0, n) for n in out.shape)]


def compiled_call(kernel: Callable, *, grid=None, grid_spec=None, in_specs=None, out_specs=None, out_shape,
                  scratch_shapes: Sequence = (), input_output_aliases: dict[int, int] | None = None,
                  loop_axes: tuple[int, ...] = (), **_: Any) -> Callable:
    """``grid_call`` from ``pl.pallas_call``'s arguments (``grid`` and specs, or a ``PrefetchScalarGridSpec``)."""
    prefetch = 0
    if grid_spec is not None:
        grid, in_specs, out_specs = grid_spec.grid, grid_spec.in_specs, grid_spec.out_specs
        scratch_shapes, prefetch = grid_spec.scratch_shapes, grid_spec.num_scalar_prefetch
    return grid_call(kernel, grid=tuple(grid), in_specs=list(in_specs), out_specs=out_specs, out_shape=out_shape,
                     scratch_shapes=scratch_shapes or (), num_scalar_prefetch=prefetch,
                     input_output_aliases=input_output_aliases, loop_axes=loop_axes)


def kernel_call(kernel: Callable, *, compiled: bool, loop_axes: tuple[int, ...] = (), **kwargs: Any) -> Callable:
    """``pl.pallas_call(kernel, **kwargs)``, or with ``compiled`` the CPU executor of the same call
    (``interpret``, ``name`` and ``compiler_params`` then do not apply; ``loop_axes`` as ``grid_call``'s)."""
    if compiled:
        return compiled_call(kernel, loop_axes=loop_axes, **kwargs)
    return pl.pallas_call(kernel, **kwargs)
