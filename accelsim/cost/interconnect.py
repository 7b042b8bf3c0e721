"""Time of one collective on a chip's links: ring algorithms over n devices, per-hop latency.

``bytes`` is the size of the per-device buffer each formula is stated in: the operand of an
all-reduce, reduce-scatter, ppermute or all-to-all, and the gathered result of an all-gather.
A ring all-reduce sends 2(n-1)/n of it out of each device in 2(n-1) steps; all-gather and
reduce-scatter (n-1)/n in n-1 steps; all-to-all (n-1)/n in one step; ppermute all of it in one.
The bandwidth is all of the chip's links together, per direction (a ring step uses every link, as
through a switch); a chip without links (one host's devices) moves the bytes through its main memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from accelsim.chips.spec import Chip
from accelsim.errors import AccelsimError

# algorithm -> (share of the buffer each device sends, hops each paying the link latency), for n devices
ALGORITHMS = {
    "all_reduce": lambda n: (2 * (n - 1) / n, 2 * (n - 1)),
    "all_gather": lambda n: ((n - 1) / n, n - 1),
    "reduce_scatter": lambda n: ((n - 1) / n, n - 1),
    "all_to_all": lambda n: ((n - 1) / n, 1 if n > 1 else 0),
    "ppermute": lambda n: (1.0, 1),
}


@dataclass(frozen=True)
class LinkTime:
    """What one collective costs each device: bytes sent over ``link``, and seconds."""

    link: str
    sent_bytes: float
    time_s: float


def collective_time(algorithm: str, nbytes: float, devices: int, chip: Chip) -> LinkTime:
    """Bytes each device sends and the time of ``algorithm`` over ``devices`` devices of ``chip``."""
    if algorithm not in ALGORITHMS:
        raise AccelsimError(f"no interconnect model for collective '{algorithm}' (known: {', '.join(ALGORITHMS)})")
    share, hops = ALGORITHMS[algorithm](devices)
    if chip.links:
        name = "+".join(link.name for link in chip.links)
        bandwidth, latency = chip.interconnect_bytes_per_s, max(link.latency_s for link in chip.links)
    else:
        name, bandwidth, latency = "interconnect", chip.main_memory.bandwidth_bytes_per_s, 0.0
    sent = share * nbytes
    return LinkTime(name, sent, sent / bandwidth + hops * latency)
