"""Hypothesis settings for the fuzz tests: ``fuzz_settings(max_examples)``, deterministic and without a database."""

from __future__ import annotations


def fuzz_settings(max_examples: int):
    """Same examples on every run (CI is deterministic); no time limit per example; no .hypothesis folder."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
