"""Tests of the pipeline stages, one sub-package per ``silverset.components`` stage."""
