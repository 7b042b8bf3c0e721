"""Read chip files (TOML) into ``Chip`` values, rejecting any missing, negative, implausible or unknown field.

Every figure must be a finite number inside the physically plausible range of its kind (``LIMITS``):
a NaN, an infinity or a figure of 1e-300 or 1e300 would only give absurd times. Memory-level and link
names must be unique. An unreadable file (a directory, not UTF-8, not TOML) is one line naming it.

Sections a chip file may leave out get a stated default: no ``[block_rule]`` means blocks are
multiples of 8, no ``[accumulator]`` keeps partial sums in the staging memory, no ``[mma]`` on a
tensor-core chip pads to ``matrix.rows`` x min(``matrix.cols``, 8) x 16, no ``[systolic]`` overlaps
nothing between folds, no ``[launch]`` costs nothing per kernel. Each default says so in its source.
The optional ``[power]``, ``[scale_up]``, ``[sustained]`` and ``[fabric]`` sections (``accelsim.chips.sections``)
are None when absent. The field checks themselves live in ``accelsim.chips.fields``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

# LIMITS is re-exported: error messages and the README name accelsim.chips.loader.LIMITS.
from accelsim.chips.fields import LIMITS as LIMITS
from accelsim.chips.fields import check_fields, choice, figure, flops_table
from accelsim.chips.sections import fabric, power, scale_up, sustained
from accelsim.chips.spec import (ARCHITECTURES, DATAFLOWS, DEFAULT_BLOCK_RULE, MATRIX_KINDS, NO_LAUNCH_SOURCE,
                                 NO_SYSTOLIC_OVERLAP, Accumulator, BlockRule, Chip, Link, MatrixUnit, MemoryLevel,
                                 MmaTile, SystolicOverlap)
from accelsim.errors import AccelsimError

PRESET_DIR = Path(__file__).parent / "presets"
HOST_NAME = "host"

_TOP = {"name": str, "vendor": str, "architecture": str, "description": str, "clock": dict, "matrix": dict,
        "memory": list, "link": list, "pipeline": dict, "vector": dict, "block_rule": dict, "accumulator": dict,
        "mma": dict, "systolic": dict, "launch": dict, "device_names": list, "power": dict, "scale_up": dict,
        "sustained": dict, "fabric": dict}
_BLOCK_RULE = {"sublane": int, "lane": int, "power_of_two": bool, "source": str, "assumption": str}
_ACCUMULATOR = {"capacity_bytes": float, "fraction": float, "source": str, "assumption": str}
_MMA = {"m": int, "n": int, "k": int, "source": str, "assumption": str}
_SYSTOLIC = {"stationary_double_buffered": bool, "drain_overlaps": bool, "load_bytes_per_cycle": float, "source": str,
             "assumption": str}
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
        try:
            return load_chip_file(path)
        except AccelsimError as exc:
            raise AccelsimError(f"{exc}; re-run `accelsim calibrate` to measure the host again") from None
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
    if not path.is_file():
        raise AccelsimError(f"chip file {path} is not a file (a directory?)")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise AccelsimError(f"chip file {path} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise AccelsimError(f"chip file {path}: not UTF-8 text (byte {exc.start})") from None
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # ValueError: an integer too long to convert
        raise AccelsimError(f"chip file {path}: not valid TOML ({str(exc).splitlines()[0]})") from None
    return chip_from_dict(data, where=str(path))


def chip_from_dict(data: dict[str, Any], where: str = "<dict>") -> Chip:
    """Build a ``Chip`` from parsed TOML, validating names, types and signs."""
    check_fields(data, _TOP, _TOP_REQUIRED, where, "")
    arch = choice(data["architecture"], ARCHITECTURES, where, "architecture")
    clock = data["clock"]
    check_fields(clock, _CLOCK, ("hz", "source"), where, "clock.")
    matrix = _matrix(data["matrix"], where)
    levels = data["memory"]
    if not levels:
        raise AccelsimError(f"chip file {where}: 'memory' needs at least one level")
    memory = tuple(_memory(level, where, f"memory[{i}].") for i, level in enumerate(levels))
    links = tuple(_link(link, where, f"link[{i}].") for i, link in enumerate(data.get("link", [])))
    _unique_names(memory, where, "memory")
    _unique_names(links, where, "link")
    vector = data.get("vector", {"exp_per_s": 0.0, "source": "not modelled"})
    check_fields(vector, _VECTOR, ("exp_per_s", "source"), where, "vector.")
    pipeline = data.get("pipeline", {"step_overhead_s": 0.0, "source": "not modelled"})
    check_fields(pipeline, _PIPELINE, ("step_overhead_s", "source"), where, "pipeline.")
    launch = data.get("launch", {"overhead_s": 0.0, "source": NO_LAUNCH_SOURCE})
    check_fields(launch, _LAUNCH, ("overhead_s", "source"), where, "launch.")
    return Chip(
        name=data["name"], vendor=data["vendor"], architecture=arch,
        clock_hz=figure(clock["hz"], where, "clock.hz", "clock"), clock_source=clock["source"],
        matrix=matrix, memory=memory, links=links, description=data.get("description", ""), origin=where,
        step_overhead_s=figure(pipeline["step_overhead_s"], where, "pipeline.step_overhead_s", "seconds"),
        step_overhead_source=pipeline["source"],
        step_operand_bytes_per_s=figure(pipeline.get("step_operand_bytes_per_s", 0.0), where,
                                        "pipeline.step_operand_bytes_per_s", "optional_bandwidth"),
        exp_per_s=figure(vector["exp_per_s"], where, "vector.exp_per_s", "rate"), exp_source=vector["source"],
        block_rule=_block_rule(data, where), mma=_mma(data, matrix, where), systolic=_systolic(data, matrix, where),
        launch_overhead_s=figure(launch["overhead_s"], where, "launch.overhead_s", "seconds"),
        launch_source=launch["source"],
        device_names=_device_names(data.get("device_names", []), where),
        power=power(data, where), scale_up=scale_up(data, where), sustained=sustained(data, where),
        fabric=fabric(data, where),
    )


def _block_rule(data: dict[str, Any], where: str) -> BlockRule:
    """The ``[block_rule]`` section with the ``[accumulator]`` attached; the multiples-of-8 default without one."""
    rule = DEFAULT_BLOCK_RULE
    if "block_rule" in data:
        raw = data["block_rule"]
        check_fields(raw, _BLOCK_RULE, ("sublane", "lane", "power_of_two", "source"), where, "block_rule.")
        rule = BlockRule(
            sublane=int(figure(raw["sublane"], where, "block_rule.sublane", "count")),
            lane=int(figure(raw["lane"], where, "block_rule.lane", "count")),
            power_of_two=raw["power_of_two"], source=raw["source"], assumption=raw.get("assumption", ""))
    if "accumulator" not in data:
        return rule
    raw = data["accumulator"]
    check_fields(raw, _ACCUMULATOR, ("capacity_bytes", "fraction", "source"), where, "accumulator.")
    fraction = figure(raw["fraction"], where, "accumulator.fraction", "fraction")
    if fraction < 1 and not raw.get("assumption", "").strip():
        raise AccelsimError(f"chip file {where}: missing field 'accumulator.assumption': a fraction below 1 "
                            "is an assumption and must say so")
    accumulator = Accumulator(capacity_bytes=figure(raw["capacity_bytes"], where, "accumulator.capacity_bytes",
                                                    "capacity"),
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
    check_fields(raw, _MMA, ("m", "n", "k", "source"), where, "mma.")
    m, n, k = (int(figure(raw[key], where, f"mma.{key}", "count")) for key in ("m", "n", "k"))
    return MmaTile(m, n, k, raw["source"], raw.get("assumption", ""))


def _systolic(data: dict[str, Any], matrix: MatrixUnit, where: str) -> SystolicOverlap:
    """The ``[systolic]`` overlap modes of a systolic chip; overlapping nothing without one."""
    _only_for(data, "systolic", matrix, "systolic", where)
    if "systolic" not in data:
        return NO_SYSTOLIC_OVERLAP
    raw = data["systolic"]
    check_fields(raw, _SYSTOLIC, ("stationary_double_buffered", "drain_overlaps", "source"), where, "systolic.")
    load = raw.get("load_bytes_per_cycle")
    if load is not None and not raw["stationary_double_buffered"]:
        raise AccelsimError(f"chip file {where}: 'systolic.load_bytes_per_cycle' describes the double-buffered "
                            "load path: it needs stationary_double_buffered = true")
    return SystolicOverlap(raw["stationary_double_buffered"], raw["drain_overlaps"], raw["source"],
                           raw.get("assumption", ""),
                           0.0 if load is None else figure(load, where, "systolic.load_bytes_per_cycle", "bytes_per_cycle"))


def _only_for(data: dict[str, Any], section: str, matrix: MatrixUnit, kind: str, where: str) -> None:
    """A one-line error when ``section`` is present on a chip whose matrix kind is not ``kind``."""
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
    check_fields(raw, _MATRIX, ("kind", "rows", "cols", "count", "dense_flops", "source"), where, "matrix.")
    tables = {key: flops_table(raw.get(key, {}), where, f"matrix.{key}") for key in ("dense_flops", "sparse_flops")}
    if not tables["dense_flops"]:
        raise AccelsimError(f"chip file {where}: 'matrix.dense_flops' needs at least one dtype")
    return MatrixUnit(
        kind=choice(raw["kind"], MATRIX_KINDS, where, "matrix.kind"),
        rows=int(figure(raw["rows"], where, "matrix.rows", "count")),
        cols=int(figure(raw["cols"], where, "matrix.cols", "count")),
        count=int(figure(raw["count"], where, "matrix.count", "count")),
        dense_flops=tables["dense_flops"], sparse_flops=tables["sparse_flops"], source=raw["source"],
        dataflow=choice(raw.get("dataflow", "weight_stationary"), DATAFLOWS, where, "matrix.dataflow"),
        assumption=raw.get("assumption", ""),
    )


def _memory(raw: dict, where: str, prefix: str) -> MemoryLevel:
    check_fields(raw, _MEMORY, ("name", "capacity_bytes", "bandwidth_bytes_per_s", "source"), where, prefix)
    return MemoryLevel(
        name=raw["name"],
        capacity_bytes=figure(raw["capacity_bytes"], where, prefix + "capacity_bytes", "capacity"),
        bandwidth_bytes_per_s=figure(raw["bandwidth_bytes_per_s"], where, prefix + "bandwidth_bytes_per_s",
                                     "bandwidth"),
        instances=int(figure(raw.get("instances", 1), where, prefix + "instances", "count")),
        source=raw["source"], assumption=raw.get("assumption", ""),
    )


def _link(raw: dict, where: str, prefix: str) -> Link:
    check_fields(raw, _LINK, ("name", "bandwidth_bytes_per_s", "count", "source"), where, prefix)
    return Link(
        name=raw["name"], source=raw["source"], assumption=raw.get("assumption", ""),
        bandwidth_bytes_per_s=figure(raw["bandwidth_bytes_per_s"], where, prefix + "bandwidth_bytes_per_s",
                                     "bandwidth"),
        count=int(figure(raw["count"], where, prefix + "count", "count")),
        latency_s=figure(raw.get("latency_s", 0.0), where, prefix + "latency_s", "seconds"),
    )


def _unique_names(items: tuple, where: str, section: str) -> None:
    """A one-line error when two entries of ``section`` share a name."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            raise AccelsimError(f"chip file {where}: '{section}[{i}].name' repeats the name '{item.name}'")
        seen.add(item.name)
