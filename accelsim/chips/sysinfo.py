"""What the operating system says about this machine: caches, memory size, CPU clock, SIMD width, CPUs."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim.errors import AccelsimError

_SYS_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class CacheLevel:
    """One data (or unified) cache level as the OS reports it."""

    level: int
    size_bytes: int
    instances: int  # distinct copies across the CPUs this process may use
    kind: str  # "Data" or "Unified"


def read_caches() -> list[CacheLevel]:
    """Data and unified caches from sysfs, one entry per level, counting distinct instances."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = list(range(os.cpu_count() or 1))
    found: dict[int, dict[str, Any]] = {}
    for cpu in cpus:
        for index in sorted((_SYS_CPU / f"cpu{cpu}" / "cache").glob("index*")):
            try:
                kind = (index / "type").read_text().strip()
                if kind not in ("Data", "Unified"):
                    continue
                level = int((index / "level").read_text())
                size = _parse_size((index / "size").read_text())
                shared = (index / "shared_cpu_list").read_text().strip()
            except (OSError, ValueError):
                continue
            entry = found.setdefault(level, {"size": size, "kind": kind, "groups": set()})
            entry["groups"].add(shared)
    caches = [CacheLevel(level, e["size"], len(e["groups"]), e["kind"]) for level, e in sorted(found.items())]
    if caches:
        return caches
    for level, name in ((1, "SC_LEVEL1_DCACHE_SIZE"), (2, "SC_LEVEL2_CACHE_SIZE"), (3, "SC_LEVEL3_CACHE_SIZE")):
        try:
            size = os.sysconf(name)
        except (ValueError, OSError, AttributeError):
            continue
        if size and size > 0:
            caches.append(CacheLevel(level, int(size), 1, "Unified" if level > 1 else "Data"))
    return caches


def read_memory_bytes() -> tuple[int, str]:
    """Installed memory and where the number came from."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024, "/proc/meminfo MemTotal"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "sysconf(SC_PAGE_SIZE x SC_PHYS_PAGES)"
    except (ValueError, OSError, AttributeError):
        raise AccelsimError("calibrate: cannot read the installed memory size from this OS") from None


def read_clock_hz() -> tuple[float, str, str]:
    """(hz, source, assumption) for the CPU clock: the cpufreq maximum, else /proc/cpuinfo, else a placeholder."""
    max_freq = _SYS_CPU / "cpu0" / "cpufreq" / "cpuinfo_max_freq"
    try:
        return int(max_freq.read_text()) * 1e3, f"{max_freq} (maximum frequency)", ""
    except (OSError, ValueError):
        pass
    mhz = cpuinfo_field("cpu MHz")
    if mhz:
        try:
            return float(mhz) * 1e6, "/proc/cpuinfo 'cpu MHz' of the first CPU", (
                "cpufreq is not exposed (typical of VMs); 'cpu MHz' is the current, not the maximum, frequency.")
        except ValueError:
            pass
    return 1e9, "placeholder", "This OS exposes no CPU clock; 1 GHz is a placeholder so that cycles can be counted."


def simd_f32_lanes() -> tuple[int, str]:
    """f32 lanes of the widest vector unit the CPU advertises, and the flag that says so."""
    flags = set((cpuinfo_field("flags") or cpuinfo_field("Features") or "").split())
    for flag, lanes in (("avx512f", 16), ("avx2", 8), ("avx", 8), ("asimd", 4), ("neon", 4), ("sse2", 4)):
        if flag in flags:
            return lanes, flag
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return 4, "aarch64 (NEON is mandatory)"
    return 1, "no SIMD flag found"


def cpuinfo_field(name: str) -> str | None:
    """The first value of a /proc/cpuinfo field, or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def _parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"unreadable cache size {text!r}")
    return int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
