"""Read chip files (TOML) into ``Chip`` values, rejecting any missing, negative or unknown field."""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

from accelsim.chips.spec import ARCHITECTURES, DATAFLOWS, MATRIX_KINDS, Chip, Link, MatrixUnit, MemoryLevel
from accelsim.dtypes import canonical_dtype
from accelsim.errors import AccelsimError

PRESET_DIR = Path(__file__).parent / "presets"
HOST_NAME = "host"

_TOP = {"name": str, "vendor": str, "architecture": str, "description": str, "clock": dict, "matrix": dict,
        "memory": list, "link": list, "pipeline": dict, "vector": dict}
_VECTOR = {"exp_per_s": float, "source": str, "assumption": str}
_PIPELINE = {"step_overhead_s": float, "step_operand_bytes_per_s": float, "source": str, "assumption": str}
_TOP_REQUIRED = ("name", "vendor", "architecture", "clock", "matrix", "memory")
_CLOCK = {"hz": float, "source": str, "assumption": str}
_MATRIX = {"kind": str, "rows": int, "cols": int, "count": int, "dataflow": str, "dense_flops": dict,
           "sparse_flops": dict, "source": str, "assumption": str}
_MEMORY = {"name": str, "capacity_bytes": float, "bandwidth_bytes_per_s": float, "instances": int,
           "source": str, "assumption": str}
_LINK = {"name": str, "bandwidth_bytes_per_s": float, "count": int, "latency_s": float, "source": str,
         "assumption": str}
_OPTIONAL = {"description", "link", "assumption", "dataflow", "instances", "latency_s", "sparse_flops"}


def host_cache_path() -> Path:
    """Where ``accelsim calibrate`` stores the measured host chip."""
    root = os.environ.get("ACCELSIM_CACHE") or Path.home() / ".cache" / "accelsim"
    return Path(root) / "host.toml"


def preset_names() -> list[str]:
    """Names of the shipped presets, plus ``host``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml")) + [HOST_NAME]


def load_chip(name_or_path: str) -> Chip:
    """A preset by name, ``host`` from the calibration cache, or a user's own TOML file by path."""
    text = str(name_or_path)
    if text == HOST_NAME:
        path = host_cache_path()
        if not path.exists():
            raise AccelsimError("chip 'host' is not calibrated yet: run `accelsim calibrate` first")
        return load_chip_file(path)
    if text.endswith(".toml") or os.sep in text:
        return load_chip_file(Path(text))
    path = PRESET_DIR / f"{text}.toml"
    if not path.exists():
        near = difflib.get_close_matches(text, preset_names(), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; known chips: {', '.join(preset_names())}"
        raise AccelsimError(f"unknown chip '{text}'{hint}")
    return load_chip_file(path)


def load_chip_file(path: Path) -> Chip:
    """Parse and validate one chip file; every problem names the file and the field."""
    path = Path(path)
    if not path.exists():
        raise AccelsimError(f"chip file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AccelsimError(f"chip file {path}: not valid TOML ({exc})") from None
    return chip_from_dict(data, where=str(path))


def chip_from_dict(data: dict[str, Any], where: str = "<dict>") -> Chip:
    """Build a ``Chip`` from parsed TOML, validating names, types and signs."""
    _check_fields(data, _TOP, _TOP_REQUIRED, where, "")
    arch = _choice(data["architecture"], ARCHITECTURES, where, "architecture")
    clock = data["clock"]
    _check_fields(clock, _CLOCK, ("hz", "source"), where, "clock.")
    matrix = _matrix(data["matrix"], where)
    levels = data["memory"]
    if not levels:
        raise AccelsimError(f"chip file {where}: 'memory' needs at least one level")
    memory = tuple(_memory(level, where, f"memory[{i}].") for i, level in enumerate(levels))
    links = tuple(_link(link, where, f"link[{i}].") for i, link in enumerate(data.get("link", [])))
    vector = data.get("vector", {"exp_per_s": 0.0, "source": "not modelled"})
    _check_fields(vector, _VECTOR, ("exp_per_s", "source"), where, "vector.")
    if vector["exp_per_s"] < 0:
        raise AccelsimError(f"chip file {where}: 'vector.exp_per_s' must not be negative (got {vector['exp_per_s']})")
    pipeline = data.get("pipeline", {"step_overhead_s": 0.0, "source": "not modelled"})
    _check_fields(pipeline, _PIPELINE, ("step_overhead_s", "source"), where, "pipeline.")
    if pipeline["step_overhead_s"] < 0 or pipeline.get("step_operand_bytes_per_s", 0.0) < 0:
        raise AccelsimError(f"chip file {where}: 'pipeline' figures must not be negative (got {pipeline})")
    return Chip(
        name=data["name"], vendor=data["vendor"], architecture=arch,
        clock_hz=_positive(clock["hz"], where, "clock.hz"), clock_source=clock["source"],
        matrix=matrix, memory=memory, links=links, description=data.get("description", ""), origin=where,
        step_overhead_s=float(pipeline["step_overhead_s"]), step_overhead_source=pipeline["source"],
        step_operand_bytes_per_s=float(pipeline.get("step_operand_bytes_per_s", 0.0)),
        exp_per_s=float(vector["exp_per_s"]), exp_source=vector["source"],
    )


def _matrix(raw: dict, where: str) -> MatrixUnit:
    _check_fields(raw, _MATRIX, ("kind", "rows", "cols", "count", "dense_flops", "source"), where, "matrix.")
    tables = {}
    for key in ("dense_flops", "sparse_flops"):
        table = {}
        for dtype, value in raw.get(key, {}).items():
            try:
                name = canonical_dtype(dtype)
            except AccelsimError:
                raise AccelsimError(f"chip file {where}: unknown field 'matrix.{key}.{dtype}'") from None
            table[name] = _positive(value, where, f"matrix.{key}.{dtype}")
        tables[key] = table
    if not tables["dense_flops"]:
        raise AccelsimError(f"chip file {where}: 'matrix.dense_flops' needs at least one dtype")
    return MatrixUnit(
        kind=_choice(raw["kind"], MATRIX_KINDS, where, "matrix.kind"),
        rows=int(_positive(raw["rows"], where, "matrix.rows")),
        cols=int(_positive(raw["cols"], where, "matrix.cols")),
        count=int(_positive(raw["count"], where, "matrix.count")),
        dense_flops=tables["dense_flops"], sparse_flops=tables["sparse_flops"], source=raw["source"],
        dataflow=_choice(raw.get("dataflow", "weight_stationary"), DATAFLOWS, where, "matrix.dataflow"),
        assumption=raw.get("assumption", ""),
    )


def _memory(raw: dict, where: str, prefix: str) -> MemoryLevel:
    _check_fields(raw, _MEMORY, ("name", "capacity_bytes", "bandwidth_bytes_per_s", "source"), where, prefix)
    return MemoryLevel(
        name=raw["name"],
        capacity_bytes=_positive(raw["capacity_bytes"], where, prefix + "capacity_bytes"),
        bandwidth_bytes_per_s=_positive(raw["bandwidth_bytes_per_s"], where, prefix + "bandwidth_bytes_per_s"),
        instances=int(_positive(raw.get("instances", 1), where, prefix + "instances")),
        source=raw["source"], assumption=raw.get("assumption", ""),
    )


def _link(raw: dict, where: str, prefix: str) -> Link:
    _check_fields(raw, _LINK, ("name", "bandwidth_bytes_per_s", "count", "source"), where, prefix)
    latency = raw.get("latency_s", 0.0)
    if latency < 0:
        raise AccelsimError(f"chip file {where}: '{prefix}latency_s' must not be negative (got {latency})")
    return Link(
        name=raw["name"], bandwidth_bytes_per_s=_positive(raw["bandwidth_bytes_per_s"], where, prefix + "bandwidth_bytes_per_s"),
        count=int(_positive(raw["count"], where, prefix + "count")), source=raw["source"],
        latency_s=float(latency), assumption=raw.get("assumption", ""),
    )


def _check_fields(raw: Any, schema: dict, required: tuple, where: str, prefix: str) -> None:
    if not isinstance(raw, dict):
        raise AccelsimError(f"chip file {where}: '{prefix.rstrip('.') or 'top level'}' must be a table")
    for key in raw:
        if key not in schema:
            raise AccelsimError(f"chip file {where}: unknown field '{prefix}{key}'")
    for key in required:
        if key not in raw:
            raise AccelsimError(f"chip file {where}: missing field '{prefix}{key}'")
    for key, value in raw.items():
        want = schema[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if want in (int, float) else isinstance(value, want)
        if want is int and isinstance(value, float) and not value.is_integer():
            ok = False
        if not ok:
            raise AccelsimError(f"chip file {where}: field '{prefix}{key}' must be {want.__name__}, got {value!r}")
        if want is str and key == "source" and not value.strip():
            raise AccelsimError(f"chip file {where}: field '{prefix}{key}' is empty: every figure needs a source")


def _positive(value: Any, where: str, field: str) -> float:
    if value <= 0:
        raise AccelsimError(f"chip file {where}: '{field}' must be positive (got {value})")
    return float(value)


def _choice(value: str, allowed: tuple, where: str, field: str) -> str:
    if value not in allowed:
        raise AccelsimError(f"chip file {where}: '{field}' must be one of {', '.join(allowed)} (got '{value}')")
    return value
