"""Tests of ``silverset.components.score``."""
