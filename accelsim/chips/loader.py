"""Read chip files (TOML) into ``Chip`` values, rejecting any missing, negative or unknown field.

Sections a chip file may leave out get a stated default: no ``[block_rule]`` means blocks are
multiples of 8, no ``[accumulator]`` keeps partial sums in the staging memory, no ``[mma]`` on a
tensor-core chip pads to ``matrix.rows`` x min(``matrix.cols``, 8) x 16, no ``[systolic]`` overlaps
nothing between folds, no ``[launch]`` costs nothing per kernel. Each default says so in its source.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

from accelsim.chips.spec import (ARCHITECTURES, DATAFLOWS, DEFAULT_BLOCK_RULE, MATRIX_KINDS, NO_LAUNCH_SOURCE,
                                 NO_SYSTOLIC_OVERLAP, Accumulator, BlockRule, Chip, Link, MatrixUnit, MemoryLevel,
                                 MmaTile, SystolicOverlap)
from accelsim.dtypes import canonical_dtype
from accelsim.errors import AccelsimError

PRESET_DIR = Path(__file__).parent / "presets"
HOST_NAME = "host"

_TOP = {"name": str, "vendor": str, "architecture": str, "description": str, "clock": dict, "matrix": dict,
        "memory": list, "link": list, "pipeline": dict, "vector": dict, "block_rule": dict, "accumulator": dict,
        "mma": dict, "systolic": dict, "launch": dict, "device_names": list}
_BLOCK_RULE = {"sublane": int, "lane": int, "power_of_two": bool, "source": str, "assumption": str}
_ACCUMULATOR = {"capacity_bytes": float, "fraction": float, "source": str, "assumption": str}
_MMA = {"m": int, "n": int, "k": int, "source": str, "assumption": str}
_SYSTOLIC = {"stationary_double_buffered": bool, "drain_overlaps": bool, "source": str, "assumption": str}
_LAUNCH = {"overhead_s": float, "source": str, "assumption": str}
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
    _non_negative(vector["exp_per_s"], where, "vector.exp_per_s")
    pipeline = data.get("pipeline", {"step_overhead_s": 0.0, "source": "not modelled"})
    _check_fields(pipeline, _PIPELINE, ("step_overhead_s", "source"), where, "pipeline.")
    if pipeline["step_overhead_s"] < 0 or pipeline.get("step_operand_bytes_per_s", 0.0) < 0:
        raise AccelsimError(f"chip file {where}: 'pipeline' figures must not be negative (got {pipeline})")
    launch = data.get("launch", {"overhead_s": 0.0, "source": NO_LAUNCH_SOURCE})
    _check_fields(launch, _LAUNCH, ("overhead_s", "source"), where, "launch.")
    return Chip(
        name=data["name"], vendor=data["vendor"], architecture=arch,
        clock_hz=_positive(clock["hz"], where, "clock.hz"), clock_source=clock["source"],
        matrix=matrix, memory=memory, links=links, description=data.get("description", ""), origin=where,
        step_overhead_s=float(pipeline["step_overhead_s"]), step_overhead_source=pipeline["source"],
        step_operand_bytes_per_s=float(pipeline.get("step_operand_bytes_per_s", 0.0)),
        exp_per_s=float(vector["exp_per_s"]), exp_source=vector["source"],
        block_rule=_block_rule(data, where), mma=_mma(data, matrix, where), systolic=_systolic(data, matrix, where),
        launch_overhead_s=_non_negative(launch["overhead_s"], where, "launch.overhead_s"),
        launch_source=launch["source"],
        device_names=_device_names(data.get("device_names", []), where),
    )


def _block_rule(data: dict[str, Any], where: str) -> BlockRule:
    """The ``[block_rule]`` section with the ``[accumulator]`` attached; the multiples-of-8 default without one."""
    rule = DEFAULT_BLOCK_RULE
    if "block_rule" in data:
        raw = data["block_rule"]
        _check_fields(raw, _BLOCK_RULE, ("sublane", "lane", "power_of_two", "source"), where, "block_rule.")
        rule = BlockRule(
            sublane=int(_positive(raw["sublane"], where, "block_rule.sublane")),
            lane=int(_positive(raw["lane"], where, "block_rule.lane")),
            power_of_two=raw["power_of_two"], source=raw["source"], assumption=raw.get("assumption", ""))
    if "accumulator" not in data:
        return rule
    raw = data["accumulator"]
    _check_fields(raw, _ACCUMULATOR, ("capacity_bytes", "fraction", "source"), where, "accumulator.")
    fraction = _positive(raw["fraction"], where, "accumulator.fraction")
    if fraction > 1:
        raise AccelsimError(f"chip file {where}: 'accumulator.fraction' must be at most 1 (got {fraction})")
    if fraction < 1 and not raw.get("assumption", "").strip():
        raise AccelsimError(f"chip file {where}: missing field 'accumulator.assumption': a fraction below 1 "
                            "is an assumption and must say so")
    accumulator = Accumulator(capacity_bytes=_positive(raw["capacity_bytes"], where, "accumulator.capacity_bytes"),
                              fraction=fraction, source=raw["source"], assumption=raw.get("assumption", ""))
    return dataclasses.replace(rule, accumulator=accumulator)


def _mma(data: dict[str, Any], matrix: MatrixUnit, where: str) -> MmaTile | None:
    """The ``[mma]`` tile of a tensor-core chip; without one, ``matrix.rows`` x min(``matrix.cols``, 8) x 16."""
    _only_for(data, "mma", matrix, "tensor_core", where)
    if matrix.kind != "tensor_core":
        return None
    if "mma" not in data:
        return MmaTile(matrix.rows, min(matrix.cols, 8), 16,
                       "no [mma] in the chip file: tile = matrix.rows x min(matrix.cols, 8) x 16")
    raw = data["mma"]
    _check_fields(raw, _MMA, ("m", "n", "k", "source"), where, "mma.")
    m, n, k = (int(_positive(raw[key], where, f"mma.{key}")) for key in ("m", "n", "k"))
    return MmaTile(m, n, k, raw["source"], raw.get("assumption", ""))


def _systolic(data: dict[str, Any], matrix: MatrixUnit, where: str) -> SystolicOverlap:
    _only_for(data, "systolic", matrix, "systolic", where)
    if "systolic" not in data:
        return NO_SYSTOLIC_OVERLAP
    raw = data["systolic"]
    _check_fields(raw, _SYSTOLIC, ("stationary_double_buffered", "drain_overlaps", "source"), where, "systolic.")
    return SystolicOverlap(raw["stationary_double_buffered"], raw["drain_overlaps"], raw["source"],
                           raw.get("assumption", ""))


def _only_for(data: dict[str, Any], section: str, matrix: MatrixUnit, kind: str, where: str) -> None:
    if section in data and matrix.kind != kind:
        raise AccelsimError(f"chip file {where}: '{section}' applies only to matrix.kind = '{kind}' "
                            f"(this chip's is '{matrix.kind}')")


def _device_names(names: list, where: str) -> tuple[str, ...]:
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise AccelsimError(f"chip file {where}: 'device_names[{i}]' must be a non-empty string, got {name!r}")
    return tuple(names)


def preset_for_device(device_kind: str) -> str | None:
    """The preset whose ``device_names`` best identify a running accelerator's ``device_kind`` (the longest
    name the kind contains, case-insensitively); None when no preset claims it."""
    kind = device_kind.lower()
    best: tuple[int, str] | None = None
    for name in preset_names():
        if name == HOST_NAME:
            continue
        for needle in load_chip(name).device_names:
            if needle.lower() in kind and (best is None or len(needle) > best[0]):
                best = (len(needle), name)
    return best[1] if best else None


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
    latency = _non_negative(raw.get("latency_s", 0.0), where, prefix + "latency_s")
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


def _non_negative(value: Any, where: str, field: str) -> float:
    if value < 0:
        raise AccelsimError(f"chip file {where}: '{field}' must not be negative (got {value})")
    return float(value)


def _choice(value: str, allowed: tuple, where: str, field: str) -> str:
    if value not in allowed:
        raise AccelsimError(f"chip file {where}: '{field}' must be one of {', '.join(allowed)} (got '{value}')")
    return value
