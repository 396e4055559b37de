"""Tests of ``silverset.components.teacher``."""
