"""Tests of ``silverset.components.notify``."""
