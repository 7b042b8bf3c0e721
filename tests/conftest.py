"""Shared test helpers, kept in ``accelsim.testing`` (float64 references on already-rounded inputs, tolerances
scaled by reduction length) and re-exported here for the tests that import them from ``tests.conftest``."""

from __future__ import annotations

import os

import jax

from accelsim.testing import DTYPES, UNIT_ROUNDOFF, as_f64, matmul_tolerance, random_array

# tests/test_sharded.py runs the model on 3 XLA host devices; the count is fixed once jax starts its backends.
jax.config.update("jax_num_cpu_devices", 3)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__all__ = ["DTYPES", "UNIT_ROUNDOFF", "as_f64", "matmul_tolerance", "random_array"]
