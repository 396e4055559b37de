"""Tests of ``silverset.components.approval``."""
