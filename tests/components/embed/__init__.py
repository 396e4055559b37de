"""Tests of ``silverset.components.embed``."""
