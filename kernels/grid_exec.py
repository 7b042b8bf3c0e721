"""A compiled CPU executor for our Pallas kernels: the same kernel body, BlockSpecs and blocks, run by XLA.

``grid_call`` takes what ``pl.pallas_call`` takes. The parallel grid axes (all but the last) are
batched with ``jax.vmap``; the last axis is a ``lax.scan`` that carries the output blocks and the
scratch buffers (our output index maps ignore it: an output block stays resident across it). Each
step gathers its input blocks with ``lax.dynamic_slice`` at the index maps' block indices and runs
the kernel body through ``run_state`` (refs over the output blocks and scratch), with
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
              input_output_aliases: dict[int, int] | None = None) -> Callable:
    """A function of the kernel's operands (prefetch operands first) that runs ``kernel`` over ``grid``."""
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

        def program(flat):
            par = [jnp.asarray(i, jnp.int32) for i in jnp.unravel_index(flat, par_grid)] if par_grid else []

            def step(carry, j):
                ids = par + ([j] if sequential else [])
                blocks = [x if d is None else _block(x, s, d, ids, prefetch)
                          for x, s, d in zip(inputs, in_specs, in_dims)]
                env = [pallas_core.GridAxis(i, n) for i, n in zip(ids, grid)]

                def body(refs):
                    with pallas_core.grid_env(env):
                        kernel(*prefetch, *blocks, *refs)

                return tuple(run_state_reference(body)(carry)), None

            first = par + ([jnp.int32(0)] if sequential else [])
            init = [_initial(o, k, s, d, first, prefetch, inputs, aliases) for k, (o, s, d) in
                    enumerate(zip(out_shape, out_specs, out_dims))]
            init += [jnp.zeros(sc.shape, sc.dtype) for sc in scratch_shapes]
            final, _ = lax.scan(step, tuple(init), jnp.arange(steps, dtype=jnp.int32))
            index = [jnp.stack([jnp.asarray(i, jnp.int32) for i in s.index_map(*first, *prefetch)])
                     for s in out_specs]
            return final[:len(out_shape)], index

        count = math.prod(par_grid)
        blocks, indices = jax.vmap(program)(jnp.arange(count, dtype=jnp.int32))
        outs = [_assemble(o, d, b, idx, inputs[aliases[k]] if k in aliases else None, count)
                for k, (o, d, b, idx) in enumerate(zip(out_shape, out_dims, blocks, indices))]
        return outs[0] if single else outs

    return run


def _initial(out, k: int, spec, dims, ids, prefetch, inputs, aliases) -> jax.Array:
    """An output block's starting value: the aliased input's block, else zeros."""
    sizes, squeezed = dims
    shape = [s for s, sq in zip(sizes, squeezed) if not sq]
    if k in aliases:
        return _block(_pad(inputs[aliases[k]], sizes), spec, dims, ids, prefetch).astype(out.dtype)
    return jnp.zeros(shape, out.dtype)


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
                  **_: Any) -> Callable:
    """``grid_call`` from ``pl.pallas_call``'s arguments (``grid`` and specs, or a ``PrefetchScalarGridSpec``)."""
    prefetch = 0
    if grid_spec is not None:
        grid, in_specs, out_specs = grid_spec.grid, grid_spec.in_specs, grid_spec.out_specs
        scratch_shapes, prefetch = grid_spec.scratch_shapes, grid_spec.num_scalar_prefetch
    return grid_call(kernel, grid=tuple(grid), in_specs=list(in_specs), out_specs=out_specs, out_shape=out_shape,
                     scratch_shapes=scratch_shapes or (), num_scalar_prefetch=prefetch,
                     input_output_aliases=input_output_aliases)


def kernel_call(kernel: Callable, *, compiled: bool, **kwargs: Any) -> Callable:
    """``pl.pallas_call(kernel, **kwargs)``, or with ``compiled`` the CPU executor of the same call
    (``interpret``, ``name`` and ``compiler_params`` then do not apply)."""
    if compiled:
        return compiled_call(kernel, **kwargs)
    return pl.pallas_call(kernel, **kwargs)
