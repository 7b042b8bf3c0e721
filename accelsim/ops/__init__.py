"""Kernel ops, declared once each (``accelsim.ops.registry``)."""

from accelsim.ops.registry import Op, all_ops, get_op, op_of_kernel, register

__all__ = ["Op", "all_ops", "get_op", "op_of_kernel", "register"]
