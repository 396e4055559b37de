"""Tests of ``silverset.components.incremental``."""
