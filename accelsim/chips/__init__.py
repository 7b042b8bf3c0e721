"""Chip specs as data: frozen dataclasses read from TOML presets or a user's own file.

The module is also callable: ``accelsim.chips()`` returns the names ``load_chip`` takes (the shipped
presets, plus ``host`` once ``accelsim calibrate`` has measured this machine).
"""

import sys
import types

from accelsim.chips.loader import load_chip, load_chip_file, preset_names
from accelsim.chips.spec import Chip, Link, MatrixUnit, MemoryLevel

__all__ = ["Chip", "Link", "MatrixUnit", "MemoryLevel", "load_chip", "load_chip_file", "preset_names"]


class _CallableChipsModule(types.ModuleType):
    """``accelsim.chips`` itself: a package whose call lists the chip names."""

    def __call__(self) -> list[str]:
        """The names ``accelsim.load_chip`` takes: every shipped preset, and ``host`` (needs ``accelsim calibrate``)."""
        return preset_names()


sys.modules[__name__].__class__ = _CallableChipsModule
