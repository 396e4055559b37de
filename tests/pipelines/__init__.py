"""Tests of ``silverset.pipelines``: the CLI, compile, local runs and documented commands."""
