"""Time of one collective on a chip's links, by the algorithm its topology runs, with per-hop latency.

``bytes`` is the size of the per-device buffer each formula is stated in: the operand of an
all-reduce, reduce-scatter, ppermute or all-to-all, and the gathered result of an all-gather.
Each topology (the chip file's ``[scale_up] topology``) registers how a collective runs on it:

- a switch, a full mesh or Groq's compiler-scheduled dragonfly reach every peer in one hop, so an
  all-reduce is a direct reduce-scatter then all-gather: 2(n-1)/n of the buffer out of each device in
  2 hops (NCCL's and TensorRT-LLM's two-shot all-reduce; the ring's bytes with two latencies);
- a torus runs rings along each of its d dimensions (n^(1/d) chips each): the same bytes, but
  2 (n^(1/d) - 1) hops per dimension for an all-reduce;
- a chip file without ``[scale_up]`` is taken as a ring over n devices (2(n-1) hops).

The bandwidth is all of the chip's links together per direction (or ``[scale_up]
link_bandwidth_bytes_per_s``), the latency ``[scale_up] hop_latency_s`` (else the links' ``latency_s``).
A chip without links (one host's devices) moves the bytes through its main memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from accelsim.chips.spec import Chip
from accelsim.errors import AccelsimError

Algorithm = Callable[[int], tuple[float, float]]  # devices -> (share of the buffer each device sends, hops)

SHARES = {"all_reduce": lambda n: 2 * (n - 1) / n, "all_gather": lambda n: (n - 1) / n,
          "reduce_scatter": lambda n: (n - 1) / n, "all_to_all": lambda n: (n - 1) / n, "ppermute": lambda n: 1.0}
RING_HOPS = {"all_reduce": lambda n: 2 * (n - 1), "all_gather": lambda n: n - 1, "reduce_scatter": lambda n: n - 1,
             "all_to_all": lambda n: 1 if n > 1 else 0, "ppermute": lambda n: 1}
DIRECT_HOPS = {"all_reduce": lambda n: 2 if n > 1 else 0, "all_gather": lambda n: 1 if n > 1 else 0,
               "reduce_scatter": lambda n: 1 if n > 1 else 0, "all_to_all": lambda n: 1 if n > 1 else 0,
               "ppermute": lambda n: 1}


def _torus_hops(dims: int) -> dict[str, Callable[[int], float]]:
    side = lambda n: max(1.0, n ** (1.0 / dims))
    return {"all_reduce": lambda n: dims * 2 * (side(n) - 1), "all_gather": lambda n: dims * (side(n) - 1),
            "reduce_scatter": lambda n: dims * (side(n) - 1), "all_to_all": lambda n: dims * (side(n) - 1) / 2,
            "ppermute": lambda n: 1}


TOPOLOGY_HOPS: dict[str, dict[str, Callable[[int], float]]] = {
    "switch": DIRECT_HOPS, "mesh": DIRECT_HOPS, "dragonfly": DIRECT_HOPS,
    "torus2d": _torus_hops(2), "torus3d": _torus_hops(3), "ring": RING_HOPS, "none": RING_HOPS,
}


@dataclass(frozen=True)
class LinkTime:
    """What one collective costs each device: bytes sent over ``link``, and seconds."""

    link: str
    sent_bytes: float
    time_s: float


def collective_time(algorithm: str, nbytes: float, devices: int, chip: Chip) -> LinkTime:
    """Bytes each device sends and the time of ``algorithm`` over ``devices`` devices of ``chip``."""
    if algorithm not in SHARES:
        raise AccelsimError(f"no interconnect model for collective '{algorithm}' (known: {', '.join(SHARES)})")
    domain = chip.scale_up
    hops = TOPOLOGY_HOPS[domain.topology if domain else "ring"][algorithm](devices)
    if chip.links:
        name = "+".join(link.name for link in chip.links)
        bandwidth = (domain.link_bandwidth_bytes_per_s if domain and domain.link_bandwidth_bytes_per_s
                     else chip.interconnect_bytes_per_s)
        latency = domain.hop_latency_s if domain and domain.hop_latency_s else max(l.latency_s for l in chip.links)
    else:
        name, bandwidth, latency = "interconnect", chip.main_memory.bandwidth_bytes_per_s, 0.0
    sent = SHARES[algorithm](devices) * nbytes
    return LinkTime(name, sent, sent / bandwidth + hops * latency)
