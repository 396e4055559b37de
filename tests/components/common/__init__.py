"""Tests of ``silverset.components.common``."""
