"""Incremental runs: diff the manifest against the previous run's state so unchanged videos are never re-labelled."""
