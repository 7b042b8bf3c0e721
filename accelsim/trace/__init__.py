"""Counts from what actually runs: block transfers and work read from a workload's jaxpr."""
