"""Tests of ``silverset.components.index``."""
