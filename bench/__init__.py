"""Benchmarks: each prints civicflow's figure next to a baseline measured in the same run."""
