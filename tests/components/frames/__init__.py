"""Tests of ``silverset.components.frames``."""
