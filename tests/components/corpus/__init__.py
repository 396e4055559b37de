"""Tests of ``silverset.components.corpus``."""
