"""Tests of the benchmarks' pure parts (fits, plots, flags); the benchmarks themselves are not run here."""
