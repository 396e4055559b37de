"""Tests of ``silverset.components.abtest``."""
