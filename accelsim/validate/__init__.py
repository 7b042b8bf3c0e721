"""Validate the analytical numbers against executed workloads: timings, cross-checks and plots."""
