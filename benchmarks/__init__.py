"""Benchmarks: `make bench-quality`, `make bench-serve`."""
