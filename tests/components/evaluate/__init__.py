"""Tests of ``silverset.components.evaluate``."""
