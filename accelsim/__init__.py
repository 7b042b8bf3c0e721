"""accelsim: a JAX-based numerical emulator of AI accelerator kernels.

One schedule drives both execution and counting: the tiles the model picks for a chip
are the blocks the kernel executes with, and the bytes traced from that execution equal
the closed-form numbers.
"""

__version__ = "0.1.0"
