"""Plans: for one op on one chip, block shapes, loop order and their closed-form cost."""

from accelsim.tiling.matmul import plan_matmul
from accelsim.tiling.plan import Plan

__all__ = ["Plan", "plan_matmul"]
