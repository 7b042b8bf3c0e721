"""From one configuration to the trade-off: sweep concurrency and parallel splits into the Pareto frontier of
tok/s per user against tok/s per chip, with cost and energy per token where prices and power are given.

``frontier`` sweeps and finds ``max_throughput``; ``pareto`` keeps the non-dominated points; ``economics``
prices them; ``speculative`` and ``disaggregation`` are the two serving variants; ``acceptance`` measures a
self-speculative draft on SmolLM2. Each point is priced by ``pricing.price_point``.
"""

from accelsim.serving.frontier import Workload, max_throughput, sweep
from accelsim.serving.pareto import pareto
from accelsim.serving.point import ServingPoint

__all__ = ["ServingPoint", "Workload", "max_throughput", "pareto", "sweep"]
