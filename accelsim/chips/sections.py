"""The optional chip-file sections that describe a chip beyond one kernel's cost: ``[power]``,
``[scale_up]``, ``[sustained]`` (with ``[sustained.dense_flops]``) and ``[fabric]``.

Each is None when the file leaves it out; when present every field is checked like the rest of the file
(a missing ``source``, a non-positive watts or chip count, an unknown scope or topology is one line naming
the file and the field). ``[fabric]`` enters kernel timing (``accelsim.cost.fabric``); ``[scale_up]`` the
parallel splits; ``[power]`` the serving economics; ``[sustained]`` ``estimate --sustained`` and ``validate --published``.
"""

from __future__ import annotations

from typing import Any

from accelsim.chips.fields import check_fields, choice, figure, flops_table
from accelsim.chips.spec import POWER_SCOPES, TOPOLOGIES, Fabric, Power, ScaleUp, Sustained
from accelsim.cost.fabric import SPANS
from accelsim.errors import AccelsimError

_POWER = {"watts": float, "scope": str, "source": str, "assumption": str}
_SCALE_UP = {"chips": int, "topology": str, "hop_latency_s": float, "link_bandwidth_bytes_per_s": float,
             "source": str, "assumption": str}
_SUSTAINED = {"dense_flops": dict, "main_bandwidth_bytes_per_s": float, "clock_hz": float, "source": str,
              "assumption": str}
_FABRIC = {"topology": str, "hop_cycles": float, "source": str, "assumption": str}


def power(data: dict[str, Any], where: str) -> Power | None:
    """The ``[power]`` section: watts > 0 and a scope of ``POWER_SCOPES``; None without one."""
    if "power" not in data:
        return None
    raw = data["power"]
    check_fields(raw, _POWER, ("watts", "scope", "source"), where, "power.")
    return Power(watts=figure(raw["watts"], where, "power.watts", "watts"),
                 scope=choice(raw["scope"], POWER_SCOPES, where, "power.scope"),
                 source=raw["source"], assumption=raw.get("assumption", ""))


def scale_up(data: dict[str, Any], where: str) -> ScaleUp | None:
    """The ``[scale_up]`` section: a domain of at least one chip on one of ``TOPOLOGIES``; None without one."""
    if "scale_up" not in data:
        return None
    raw = data["scale_up"]
    check_fields(raw, _SCALE_UP, ("chips", "topology", "source"), where, "scale_up.")
    return ScaleUp(chips=int(figure(raw["chips"], where, "scale_up.chips", "count")),
                   topology=choice(raw["topology"], TOPOLOGIES, where, "scale_up.topology"),
                   source=raw["source"], assumption=raw.get("assumption", ""),
                   hop_latency_s=figure(raw.get("hop_latency_s", 0.0), where, "scale_up.hop_latency_s", "seconds"),
                   link_bandwidth_bytes_per_s=figure(raw.get("link_bandwidth_bytes_per_s", 0.0), where,
                                                     "scale_up.link_bandwidth_bytes_per_s", "optional_bandwidth"))


def sustained(data: dict[str, Any], where: str) -> Sustained | None:
    """The ``[sustained]`` section: achieved FLOP/s, bandwidth or clock, at least one given; None without one."""
    if "sustained" not in data:
        return None
    raw = data["sustained"]
    check_fields(raw, _SUSTAINED, ("source",), where, "sustained.")
    result = Sustained(source=raw["source"], assumption=raw.get("assumption", ""),
                       dense_flops=flops_table(raw.get("dense_flops", {}), where, "sustained.dense_flops"),
                       main_bandwidth_bytes_per_s=figure(raw.get("main_bandwidth_bytes_per_s", 0.0), where,
                                                         "sustained.main_bandwidth_bytes_per_s", "optional_bandwidth"),
                       clock_hz=figure(raw.get("clock_hz", 0.0), where, "sustained.clock_hz", "optional_clock"))
    if not (result.dense_flops or result.main_bandwidth_bytes_per_s or result.clock_hz):
        raise AccelsimError(f"chip file {where}: 'sustained' gives no figure: it needs dense_flops, "
                            "main_bandwidth_bytes_per_s or clock_hz")
    return result


def fabric(data: dict[str, Any], where: str) -> Fabric | None:
    """The ``[fabric]`` section: an on-chip network of a topology ``accelsim.cost.fabric`` prices and its per-hop
    cycles; None without one."""
    if "fabric" not in data:
        return None
    raw = data["fabric"]
    check_fields(raw, _FABRIC, ("topology", "hop_cycles", "source"), where, "fabric.")
    return Fabric(topology=choice(raw["topology"], tuple(SPANS), where, "fabric.topology"),
                  hop_cycles=figure(raw["hop_cycles"], where, "fabric.hop_cycles", "cycles"),
                  source=raw["source"], assumption=raw.get("assumption", ""))
