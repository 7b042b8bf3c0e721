"""Write a chip as TOML in the loader's schema (the standard library reads TOML but does not write it)."""

from __future__ import annotations

import json
import math
from typing import Any

from accelsim.chips.loader import HOST_NAME
from accelsim.errors import AccelsimError

HOST_HEADER = f"# The '{HOST_NAME}' chip, written by accelsim.chips.calibrate. Re-run `accelsim calibrate` to refresh."


def to_toml(data: dict[str, Any], header: str = HOST_HEADER) -> str:
    """Serialise a chip dict: top-level scalars and lists of scalars, then every table (with its subtables),
    then every array of tables ([[memory]], [[link]])."""
    lines = [header]
    arrays = {k: v for k, v in data.items() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items() if k not in arrays and k not in tables]
    for name, table in tables.items():
        lines += _table(name, table)
    for name, items in arrays.items():
        for item in items:
            lines += ["", f"[[{name}]]"] + [f"{k} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _table(name: str, table: dict[str, Any]) -> list[str]:
    lines = ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for key, sub in table.items():
        if isinstance(sub, dict):
            lines += _table(f"{name}.{key}", sub)
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AccelsimError(f"calibrate: refusing to write a non-finite figure ({value})")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
