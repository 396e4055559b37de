"""Tests of ``silverset.components.distill``."""
