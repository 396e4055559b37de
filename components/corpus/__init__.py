"""Synthetic video corpus with known truth, for demos, tests and benchmarks."""
