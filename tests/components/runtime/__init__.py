"""Tests of ``silverset.components.runtime``."""
