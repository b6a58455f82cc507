"""Benchmarks: `python -m bench.run --out bench/results` (see bench/README.md)."""
