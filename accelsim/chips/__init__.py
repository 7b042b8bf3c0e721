"""Chip specs as data: frozen dataclasses read from TOML presets or a user's own file."""

from accelsim.chips.loader import load_chip, load_chip_file, preset_names
from accelsim.chips.spec import Chip, Link, MatrixUnit, MemoryLevel

__all__ = ["Chip", "Link", "MatrixUnit", "MemoryLevel", "load_chip", "load_chip_file", "preset_names"]
