"""The Python API: price any JAX function on a chip, as ``jax.experimental.roofline.roofline(f)(*args)`` does.

``price(fn, *args, chip=...)`` traces ``fn`` once (``jax.make_jaxpr``; arguments may be arrays or
``jax.ShapeDtypeStruct``s, in any pytree), walks its jaxpr (``accelsim.trace.workload``) and prices every
record on the chip (``accelsim.trace.price``): a ``pallas_call`` from its own BlockSpecs and grid, a plain
``dot_general`` or elementwise op as XLA would run it, loop bodies once per trip. The answer is a frozen
``PriceResult``: per-op rows, their total ``Cost``, ``to_dict()`` (valid JSON) and a readable table.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import Any, Callable

import jax

from accelsim.chips import Chip, load_chip as _load_chip_file_or_preset
from accelsim.cost.result import Cost
from accelsim.errors import NotPriceable
from accelsim.report.table import plain, render, seconds, si
from accelsim.trace.grid_eval import NotStatic
from accelsim.trace.price import OpCost, price_workload, total
from accelsim.trace.workload import WorkloadTrace, trace_workload

ChipLike = str | PathLike | Chip


def load_chip(name_or_path: ChipLike) -> Chip:
    """A chip preset by name (``accelsim.chips()`` lists them), a chip TOML file by path, or a ``Chip`` as is."""
    if isinstance(name_or_path, Chip):
        return name_or_path
    return _load_chip_file_or_preset(str(name_or_path))


@dataclass(frozen=True)
class PriceResult:
    """What ``fn`` costs on ``chip``: one row per traced record (already times its loop trips) and the total."""

    function: str
    chip: str
    levels: tuple[str, ...]  # the chip's memory levels, outermost first
    ops: tuple[OpCost, ...]
    total: Cost

    @property
    def flops(self) -> float:
        return self.total.flops

    @property
    def time_s(self) -> float:
        return self.total.time_s

    @property
    def bound(self) -> str:
        """The term (compute, a memory level, vector) that accounts for the most time."""
        return self.total.bound

    @property
    def bytes_per_level(self) -> dict[str, float]:
        return dict(self.total.bytes_per_level)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe values (no NaN or infinity: those become None)."""
        return plain({"function": self.function, "chip": self.chip, "total": self.total.to_dict(),
                        "ops": [{"name": op.name, "scope": op.scope, "kind": op.kind, **op.cost.to_dict()}
                                for op in self.ops]})

    def __str__(self) -> str:
        rows = [{"scope": op.scope or "-", "name": op.name, "kind": op.kind, "cost": op.cost} for op in self.ops]
        rows.append({"scope": "total", "name": "", "kind": "", "cost": self.total})
        columns = [("scope", lambda r: r["scope"]), ("op", lambda r: r["name"]), ("kind", lambda r: r["kind"])]
        columns += [(f"{level} bytes", lambda r, level=level: si(r["cost"].bytes_per_level.get(level, 0.0), "B"))
                    for level in self.levels]
        columns += [("FLOPs", lambda r: si(r["cost"].flops)), ("time", lambda r: seconds(r["cost"].time_s)),
                    ("bound", lambda r: r["cost"].bound)]
        title = (f"{self.function} on {self.chip}: {si(self.flops, 'FLOP')}, {seconds(self.time_s)}, "
                 f"{self.bound}-bound")
        return render(rows, columns, title)


def price(fn: Callable[..., Any], *args: Any, chip: ChipLike = "h100-sxm", **kwargs: Any) -> PriceResult:
    """Price ``fn(*args, **kwargs)`` on ``chip`` (a preset name, a chip file path, or a ``Chip``).

    ``fn`` may be jitted or not. Array leaves of ``args`` and ``kwargs`` (``jax.Array``, ``numpy`` arrays or
    ``jax.ShapeDtypeStruct``) are traced; any other leaf (a Python int, a string) is static, as with
    ``static_argnames``. A kernel whose scalar-prefetch operands decide its copies needs those operands as
    concrete arrays. Raises ``accelsim.errors.NotPriceable`` (an ``AccelsimError``) naming the primitive and
    the scope of anything whose cost depends on array data (a data-dependent ``lax.cond``, a while loop
    with a data-dependent trip count).
    """
    target = load_chip(chip)
    costs = tuple(price_workload(trace_function(fn, *args, **kwargs), target))
    levels = tuple(level.name for level in target.memory)
    return PriceResult(function_name(fn), target.name, levels, costs, total(list(costs)))


def trace_function(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> WorkloadTrace:
    """The chip-independent records of everything ``fn(*args, **kwargs)`` executes (see ``price`` for which
    leaves are traced); a ``NotPriceable`` error for what depends on array data."""
    leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
    traced = [i for i, leaf in enumerate(leaves) if _is_array(leaf)]

    def with_traced_leaves(*values: Any) -> Any:
        filled = list(leaves)
        for i, value in zip(traced, values):
            filled[i] = value
        call_args, call_kwargs = jax.tree_util.tree_unflatten(tree, filled)
        return fn(*call_args, **call_kwargs)

    try:
        return trace_workload(with_traced_leaves, *[leaves[i] for i in traced])
    except NotStatic as exc:
        raise NotPriceable(f"cannot price {function_name(fn)}: {exc}", exc.primitive, exc.scope) from None


def function_name(fn: Callable[..., Any]) -> str:
    """``fn``'s ``__name__`` (jitted functions keep it), else its type's."""
    return getattr(fn, "__name__", type(fn).__name__)


def _is_array(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")
