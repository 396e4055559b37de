"""Tests of ``silverset.components.deploy``."""
