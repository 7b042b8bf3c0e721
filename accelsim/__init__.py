"""accelsim: a JAX-based numerical emulator of AI accelerator kernels.

One schedule drives both execution and counting: the tiles the model picks for a chip
are the blocks the kernel executes with, and the bytes traced from that execution equal
the closed-form numbers.

The Python API (imported on first use, so ``import accelsim`` stays cheap)::

    accelsim.price(fn, *args, chip="h100-sxm")   # any JAX function: per-op bytes, FLOPs, time, bound
    accelsim.load_chip("tpu-v5e")                # a preset, a chip file path, or a Chip as is
    accelsim.chips()                             # the preset names load_chip takes
    accelsim.estimate("llama-3-70b", chip="h100-sxm", batch=8, weights="int8")  # = `accelsim estimate --json`

``accelsim.testing`` holds hypothesis strategies and assertions for property-testing kernels.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from accelsim.errors import AccelsimError, NotPriceable

__version__ = "0.1.0"

_LAZY = {"price": "accelsim.api", "PriceResult": "accelsim.api", "load_chip": "accelsim.api",
         "estimate": "accelsim.models.estimate", "Cost": "accelsim.cost.result", "Chip": "accelsim.chips"}

__all__ = ["AccelsimError", "NotPriceable", "chips", *_LAZY]

if TYPE_CHECKING:
    from accelsim import chips
    from accelsim.api import PriceResult, load_chip, price
    from accelsim.chips import Chip
    from accelsim.cost.result import Cost
    from accelsim.models.estimate import estimate


def __getattr__(name: str) -> Any:
    if name == "chips":  # the subpackage, which is also callable: accelsim.chips() lists the presets
        return importlib.import_module("accelsim.chips")
    if name not in _LAZY:
        raise AttributeError(f"module 'accelsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
